//! Contract tests of the taobao adapter and sandbox against tests/contracts/taobao/.
