//! Integration tests live in tests/tests/*.rs; they start the real slotd binary.
