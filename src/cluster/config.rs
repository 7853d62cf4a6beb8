//! A server's cluster settings and their checks.

use crate::backoff::Jitter;
use crate::error::{Error, Result};

/// How a server joins a cluster (see `veltix_server_config_t`'s
/// `cluster_bus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The bus: `redis://[user:password@]host[:port][/db]`.
    pub bus: String,
    /// The cluster's name: the nodes that share it are one service.
    pub name: String,
    /// This node's id, 1 to 65,535, unique in the cluster; 0 lets the
    /// library draw one.
    pub node_id: u16,
}

/// The name of a cluster whose config names none.
pub const DEFAULT_CLUSTER_NAME: &str = "veltix";

/// The longest cluster name.
const MAX_NAME: usize = 100;

impl ClusterConfig {
    /// Checks the fields, naming the first bad one and the fix.
    pub fn validate(&self) -> Result<()> {
        let invalid = |message: String| Err(Error::InvalidArgument(message));
        if self.bus.starts_with("rediss://") {
            return invalid("config.cluster_bus uses rediss://, and this build has no TLS for the bus. Fix: reach Redis over a private network or a local TLS tunnel (such as stunnel) with redis://".into());
        }
        if !self.bus.starts_with("redis://") || redis::parse_redis_url(&self.bus).is_none() {
            return invalid(format!(
                "config.cluster_bus \"{}\" is not a redis:// address. Fix: use redis://host:port, such as \"redis://127.0.0.1:6379\"",
                self.bus_for_logs()
            ));
        }
        if self.name.is_empty()
            || self.name.len() > MAX_NAME
            || self
                .name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return invalid(format!(
                "config.cluster_name \"{}\" is empty, longer than {MAX_NAME} bytes or has spaces. Fix: name the service, such as \"game\"",
                self.name
            ));
        }
        Ok(())
    }

    /// The configured node id, or a random one (1 to 65,535) for 0.
    pub fn node_id_or_random(&self) -> u16 {
        if self.node_id != 0 {
            return self.node_id;
        }
        let salt = std::process::id() as usize ^ (self as *const Self as usize);
        let random = Jitter::new(salt).next();
        (random % 65_535) as u16 + 1
    }

    /// The bus address without its password, for logs and errors.
    pub fn bus_for_logs(&self) -> String {
        let (scheme, rest) = self.bus.split_once("://").unwrap_or(("", &self.bus));
        match rest.rsplit_once('@') {
            Some((credentials, host)) => match credentials.split_once(':') {
                Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
                None => format!("{scheme}://{credentials}@{host}"),
            },
            None => self.bus.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(bus: &str, name: &str) -> ClusterConfig {
        ClusterConfig {
            bus: bus.into(),
            name: name.into(),
            node_id: 0,
        }
    }

    #[test]
    fn bad_fields_are_named_with_a_fix() {
        assert_eq!(config("redis://127.0.0.1:6379", "game").validate(), Ok(()));
        let cases = [
            ("rediss://h:1", "game", "config.cluster_bus uses rediss"),
            ("http://h:1", "game", "config.cluster_bus"),
            ("redis://h:1", "", "config.cluster_name"),
            ("redis://h:1", "a b", "config.cluster_name"),
        ];
        for (bus, name, field) in cases {
            match config(bus, name).validate() {
                Err(Error::InvalidArgument(message)) => {
                    assert!(message.starts_with(field), "{message}");
                    assert!(message.contains("Fix:"), "{message}");
                }
                other => panic!("{bus} {name}: {other:?}"),
            }
        }
    }

    #[test]
    fn passwords_stay_out_of_logs_and_random_ids_are_never_zero() {
        let secret = config("redis://app:s3cret@10.0.0.1:6379/0", "game");
        assert_eq!(secret.bus_for_logs(), "redis://app:***@10.0.0.1:6379/0");
        assert!(!secret.bus_for_logs().contains("s3cret"));
        let user = config("redis://app@h:1", "game");
        assert_eq!(user.bus_for_logs(), "redis://app@h:1");
        let password = config("redis://:pw@h:1", "game");
        assert_eq!(password.bus_for_logs(), "redis://:***@h:1");
        let ids: std::collections::BTreeSet<u16> = (0..64)
            .map(|_| config("redis://h:1", "g").node_id_or_random())
            .collect();
        assert!(!ids.contains(&0));
        assert!(ids.len() > 1, "drawn, not fixed: {ids:?}");
        let fixed = ClusterConfig {
            node_id: 7,
            ..config("redis://h:1", "g")
        };
        assert_eq!(fixed.node_id_or_random(), 7);
    }
}
