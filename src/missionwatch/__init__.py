"""missionwatch: the mission-level behavioural monitor for AI agents.

The public surface: the pure core (`Monitor`), what it returns (`Step`,
`Rejection`, `Accepted`), specs, keys, and the codes it speaks.
"""

from .canonical import canonical_bytes, record_hash
from .codes import EscalationCode, RejectionCode
from .monitor import Accepted, Monitor, Rejection, Step
from .signing import Keyring, Signer, load_private_key
from .spec import Spec, SpecError, SpecRegistry, load_spec

__all__ = [
    "Accepted",
    "EscalationCode",
    "Keyring",
    "Monitor",
    "Rejection",
    "RejectionCode",
    "Signer",
    "Spec",
    "SpecError",
    "SpecRegistry",
    "Step",
    "canonical_bytes",
    "load_private_key",
    "load_spec",
    "record_hash",
]
__version__ = "0.1.0"
