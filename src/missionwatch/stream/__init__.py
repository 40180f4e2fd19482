"""The streaming shell: the embedded broker, the Faust service and its recovery.

Nothing here decides anything: records go to the same core `replay` uses
(`missionwatch.monitor.Monitor`), and what it returns is published.
"""
