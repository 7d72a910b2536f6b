//! Black-box tests over real sockets: raw protocol bytes and the async-nats client against
//! an in-process Petrel server.

mod adversarial_auth;
mod adversarial_disk;
mod adversarial_memory;
mod adversarial_numbers;
mod adversarial_perms;
mod adversarial_trust;
mod auth;
mod backup;
mod compression;
mod consumers;
mod consumers_policies;
mod consumers_pull;
mod consumers_retention;
mod container;
mod dashboard;
mod dead_letters;
mod docker_support;
mod headers;
mod jetstream;
mod jetstream_limits;
mod js_client_compat;
mod kv;
mod lifecycle;
mod limits;
mod monitor;
mod permissions;
mod protocol;
mod pubsub;
mod queue;
mod reload;
mod republish;
mod request;
mod shutdown;
mod support;
mod tls;
