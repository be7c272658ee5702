//! evloop-conformance: the scenario language, the runner, and the fixture recorder.
#![forbid(unsafe_code)]
