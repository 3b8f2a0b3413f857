"""Records: what every command writes and every reader reads (typed train, eval and profile
records, their one key and the schema rule: :mod:`hgbench.records.schema`), the store (atomic
write, read, scan: :mod:`hgbench.records.store`), content hashes (:mod:`hgbench.records.key`)
and provenance (:mod:`hgbench.records.provenance`)."""

from hgbench.fileio import atomic_write_bytes, utc_now  # their home is fileio; re-exported for older importers
from hgbench.records.identity import ARTIFACT, NETWORK, TRAINING, identity, join_key
from hgbench.records.key import architecture_hash, content_hash, protocol_hash, spec_hash
from hgbench.records.schema import (
    KEY_FIELDS,
    SCHEMA,
    EvalRecord,
    InvalidRecordError,
    NewerSchemaError,
    ProfileRecord,
    Record,
    RecordError,
    RecordKey,
    SweepRecord,
    TrainRecord,
    check_schema,
    key_of,
    parse_record,
)
from hgbench.records.store import (
    ScanResult,
    read_record,
    record_files,
    refuse_newer,
    repetition_range_pct,
    scan,
    write_record,
)

__all__ = [
    "ARTIFACT",
    "NETWORK",
    "TRAINING",
    "identity",
    "join_key",
    "KEY_FIELDS",
    "SCHEMA",
    "EvalRecord",
    "InvalidRecordError",
    "NewerSchemaError",
    "ProfileRecord",
    "Record",
    "RecordError",
    "RecordKey",
    "ScanResult",
    "SweepRecord",
    "TrainRecord",
    "atomic_write_bytes",
    "check_schema",
    "architecture_hash",
    "content_hash",
    "key_of",
    "parse_record",
    "protocol_hash",
    "read_record",
    "record_files",
    "refuse_newer",
    "repetition_range_pct",
    "scan",
    "spec_hash",
    "utc_now",
    "write_record",
]
