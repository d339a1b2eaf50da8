//! The operator's spelling of a [`PushConfig`]: one string per provider, as given to
//! `--push` (repeatable) by the gateway and the push worker.
//!
//! ```text
//! webhook:url=https://hooks.example.com/push,secret-file=/etc/chatgw/webhook.secret
//! apns:key-file=/etc/chatgw/AuthKey_ABC123DEFG.p8,key-id=ABC123DEFG,team-id=DEF123GHIJ,topic=com.example.chat[,sandbox][,endpoint=URL][,token-lifetime=50m][,expiration=1d]
//! fcm:service-account=/etc/chatgw/fcm.json[,endpoint=URL][,refresh-margin=5m]
//! retry:attempts=5,base-delay=500ms,max-delay=30s,deadline=2m,timeout=10s
//! tls:ca-file=/etc/chatgw/proxy-ca.pem
//! ```
//!
//! Values cannot contain commas. Durations are written as everywhere in chatgw (`500ms`, `30s`, `5m`, `1d`).

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use chatgw_units::HumanDuration;

use crate::{ApnsConfig, ConfigError, FcmConfig, PushConfig, WebhookConfig, APNS_SANDBOX};

/// Builds a [`PushConfig`] from spec strings (`--push`, repeatable), one per provider
/// plus optional `retry:` and `tls:` ones; a provider given twice is refused.
///
/// ```
/// let config = chatgw_push::parse_specs(&[
///     "webhook:url=https://hooks.example.com/push,secret-file=/etc/chatgw/webhook.secret",
///     "apns:key-file=/etc/chatgw/AuthKey_ABC123DEFG.p8,key-id=ABC123DEFG,team-id=DEF123GHIJ,topic=com.example.chat,sandbox",
///     "fcm:service-account=/etc/chatgw/fcm.json",
///     "retry:attempts=5,deadline=2m",
///     "tls:ca-file=/etc/chatgw/proxy-ca.pem",
/// ])
/// .unwrap();
/// assert_eq!(config.apns.unwrap().endpoint, chatgw_push::APNS_SANDBOX);
/// ```
///
/// Every key is listed in docs/PUSH.md.
pub fn parse_specs<S: AsRef<str>>(specs: &[S]) -> Result<PushConfig, ConfigError> {
    let mut config = PushConfig::default();
    for spec in specs {
        let spec = spec.as_ref();
        let fail = |problem: String| ConfigError::Spec { spec: spec.to_owned(), problem };
        let (kind, rest) = spec
            .split_once(':')
            .filter(|(kind, _)| !kind.contains('='))
            .ok_or_else(|| fail("expected `<kind>:key=value,...`, e.g. `webhook:url=URL,secret-file=PATH`".into()))?;
        let mut fields = Fields::parse(spec, rest).map_err(&fail)?;
        match kind {
            "webhook" => {
                let webhook =
                    WebhookConfig { url: fields.take("url")?, secret_file: fields.take("secret-file")?.into() };
                set_once(&mut config.webhook, webhook).map_err(&fail)?;
            }
            "apns" => {
                let mut apns = ApnsConfig::new(
                    &fields.take("team-id")?,
                    &fields.take("key-id")?,
                    fields.take("key-file")?,
                    &fields.take("topic")?,
                );
                if fields.flag("sandbox")? {
                    apns.endpoint = APNS_SANDBOX.into();
                }
                if let Some(endpoint) = fields.optional("endpoint") {
                    apns.endpoint = endpoint;
                }
                fields.duration("token-lifetime", &mut apns.token_lifetime)?;
                fields.duration("expiration", &mut apns.expiration)?;
                set_once(&mut config.apns, apns).map_err(&fail)?;
            }
            "fcm" => {
                let mut fcm = FcmConfig::new(fields.take("service-account")?);
                if let Some(endpoint) = fields.optional("endpoint") {
                    fcm.endpoint = endpoint;
                }
                fields.duration("refresh-margin", &mut fcm.refresh_margin)?;
                set_once(&mut config.fcm, fcm).map_err(&fail)?;
            }
            "retry" => {
                let retry = &mut config.retry;
                if let Some(attempts) = fields.optional("attempts") {
                    retry.max_attempts = match attempts.parse::<u32>() {
                        Ok(n) if n >= 1 => n,
                        _ => return Err(fail(format!("attempts `{attempts}` is not a whole number >= 1"))),
                    };
                }
                fields.duration("base-delay", &mut retry.base_delay)?;
                fields.duration("max-delay", &mut retry.max_delay)?;
                fields.duration("deadline", &mut retry.deadline)?;
                fields.duration("timeout", &mut retry.request_timeout)?;
            }
            "tls" => config.extra_ca_file = Some(PathBuf::from(fields.take("ca-file")?)),
            other => return Err(fail(format!("unknown kind `{other}` (webhook, apns, fcm, retry, tls)"))),
        }
        fields.finish()?;
    }
    Ok(config)
}

fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<(), String> {
    match slot {
        Some(_) => Err("this provider is already configured".into()),
        None => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// The `key=value` pairs of one spec; every key must be used exactly once.
struct Fields<'a> {
    spec: &'a str,
    values: BTreeMap<&'a str, &'a str>,
}

impl<'a> Fields<'a> {
    fn parse(spec: &'a str, rest: &'a str) -> Result<Fields<'a>, String> {
        let mut values = BTreeMap::new();
        for pair in rest.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if values.insert(key, value).is_some() {
                return Err(format!("`{key}` given twice"));
            }
        }
        Ok(Fields { spec, values })
    }

    fn error(&self, problem: String) -> ConfigError {
        ConfigError::Spec { spec: self.spec.to_owned(), problem }
    }

    fn optional(&mut self, key: &str) -> Option<String> {
        self.values.remove(key).map(str::to_owned)
    }

    fn take(&mut self, key: &str) -> Result<String, ConfigError> {
        match self.values.remove(key) {
            Some(value) if !value.is_empty() => Ok(value.to_owned()),
            _ => Err(self.error(format!("`{key}=...` is required"))),
        }
    }

    fn flag(&mut self, key: &str) -> Result<bool, ConfigError> {
        match self.values.remove(key) {
            None => Ok(false),
            Some("" | "true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(self.error(format!("`{key}` takes no value, got `{other}`"))),
        }
    }

    fn duration(&mut self, key: &str, into: &mut Duration) -> Result<(), ConfigError> {
        if let Some(text) = self.values.remove(key) {
            let parsed =
                text.parse::<HumanDuration>().map_err(|e| self.error(format!("`{key}` is not a duration: {e}")))?;
            *into = parsed.0;
        }
        Ok(())
    }

    fn finish(self) -> Result<(), ConfigError> {
        match self.values.keys().next() {
            Some(key) => Err(self.error(format!("unknown key `{key}`"))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::APNS_PRODUCTION;

    #[test]
    fn every_kind_parses() {
        let config = parse_specs(&[
            "webhook:url=https://h.example/p?a=1,secret-file=/s",
            "apns:key-file=/k.p8,key-id=K,team-id=T,topic=com.x,sandbox,token-lifetime=20m",
            "fcm:service-account=/sa.json,endpoint=https://127.0.0.1:9",
            "retry:attempts=3,base-delay=100ms,deadline=1m",
            "tls:ca-file=/ca.pem",
        ])
        .unwrap();
        let webhook = config.webhook.unwrap();
        assert_eq!(webhook.url, "https://h.example/p?a=1");
        assert_eq!(webhook.secret_file, PathBuf::from("/s"));
        let apns = config.apns.unwrap();
        assert_eq!((apns.endpoint.as_str(), apns.topic.as_str()), (APNS_SANDBOX, "com.x"));
        assert_eq!(apns.token_lifetime, Duration::from_secs(1200));
        assert_eq!(config.fcm.unwrap().endpoint, "https://127.0.0.1:9");
        assert_eq!(config.retry.max_attempts, 3);
        assert_eq!(config.retry.base_delay, Duration::from_millis(100));
        assert_eq!(config.retry.deadline, Duration::from_secs(60));
        assert_eq!(config.extra_ca_file, Some(PathBuf::from("/ca.pem")));
    }

    #[test]
    fn apns_defaults_to_production() {
        let config = parse_specs(&["apns:key-file=/k,key-id=K,team-id=T,topic=t"]).unwrap();
        assert_eq!(config.apns.unwrap().endpoint, APNS_PRODUCTION);
    }

    #[test]
    fn mistakes_are_refused_with_the_reason() {
        for (spec, needle) in [
            ("webhook=https://x", "expected `<kind>:"),
            ("webhook:url=https://x", "`secret-file=...` is required"),
            ("webhook:url=https://x,secret-file=/s,colour=red", "unknown key `colour`"),
            ("apns:key-file=/k,key-id=K,team-id=T,topic=t,sandbox=maybe", "takes no value"),
            ("fcm:service-account=/a,refresh-margin=soon", "not a duration"),
            ("retry:attempts=0", "attempts `0`"),
            ("gcm:x=y", "unknown kind `gcm`"),
            ("tls:ca-file=/a,ca-file=/b", "given twice"),
        ] {
            let error = parse_specs(&[spec]).unwrap_err().to_string();
            assert!(error.contains(needle), "{spec}: {error}");
        }
        let twice = parse_specs(&["fcm:service-account=/a", "fcm:service-account=/b"]).unwrap_err();
        assert!(twice.to_string().contains("already configured"), "{twice}");
    }
}
