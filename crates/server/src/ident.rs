//! Server identity: the 56-character, `N`-prefixed id nats-server advertises.

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A random server id shaped like an nkey server public key (`N` + 55 base32 chars).
pub(crate) fn server_id() -> String {
    let mut id = String::with_capacity(56);
    id.push('N');
    for _ in 0..55 {
        id.push(char::from(BASE32[fastrand::usize(..32)]));
    }
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn id_shape() {
        let id = super::server_id();
        assert_eq!(id.len(), 56);
        assert!(id.starts_with('N'));
        assert!(id.bytes().all(|b| super::BASE32.contains(&b)));
    }
}
