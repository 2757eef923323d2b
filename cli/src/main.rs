//! `spddl`: one command for every SPDDL role and tool.

fn main() {}
