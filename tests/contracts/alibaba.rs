//! Contract tests of the alibaba adapter and sandbox against tests/contracts/alibaba/.
