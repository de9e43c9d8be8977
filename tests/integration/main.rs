//! Integration tests: the AWS SDK adapters, the controller and the `execrole` binary against a real local AWS
//! (moto in server mode on a free loopback port, one per test). Nothing here can reach anything but 127.0.0.1.

mod adapters;
mod binary;
mod bulk;
mod derive_cli;
mod effect;
mod events;
mod faults;
mod holdback;
mod limits;
mod lookups;
mod prcheck;
mod proxy;
mod reconcile;
mod replicas;
mod runtime;
mod services;
mod spill;
mod support;
