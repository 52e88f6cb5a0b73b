//! Contract tests of the pdd adapter and sandbox against tests/contracts/pdd/.
