//! What `serve --sink NAME=URL` and `--sink-header NAME:Header=Value` say,
//! checked once: a bad flag is refused with an example, before anything starts.

use std::fmt;

/// One sink as configured: where its events go and the headers each request carries.
#[derive(Clone, PartialEq, Eq)]
pub struct SinkSpec {
    /// `[A-Za-z0-9_-]{1,64}`: names its directory and its consumer group.
    pub name: String,
    /// The receiver's URL, as given (it may carry credentials).
    pub url: String,
    /// Extra request headers (authentication, say), in the order given.
    pub headers: Vec<(String, String)>,
}

/// Hides header values and URL credentials: specs are logged.
impl fmt::Debug for SinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkSpec")
            .field("name", &self.name)
            .field("url", &self.display_url())
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

const SINK_EXAMPLE: &str = "--sink webhook=http://127.0.0.1:9000/events";
const HEADER_EXAMPLE: &str = "--sink-header 'webhook:Authorization=Bearer s3cret'";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("invalid --sink {given:?}: {reason}; expected NAME=URL, e.g. {SINK_EXAMPLE}")]
    Sink { given: String, reason: String },
    #[error("invalid --sink-header {given:?}: {reason}; expected NAME:Header=Value, e.g. {HEADER_EXAMPLE}")]
    Header { given: String, reason: String },
}

fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("the name must have 1 to 64 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "the name {name:?} may hold only letters, digits, '-' and '_'"
        ));
    }
    Ok(())
}

impl SinkSpec {
    /// Parses `NAME=URL`: an `http://` URL with a host (this build has no TLS client).
    pub fn parse(given: &str) -> Result<Self, SpecError> {
        let error = |reason: String| SpecError::Sink {
            given: given.to_owned(),
            reason,
        };
        let (name, url) = given
            .split_once('=')
            .ok_or_else(|| error("no '=' between the name and the URL".into()))?;
        valid_name(name).map_err(error)?;
        let rest = if let Some(rest) = url.strip_prefix("http://") {
            rest
        } else if url.starts_with("https://") {
            return Err(error(
                "https is not supported by this build: put a TLS-terminating proxy on this machine in front of the receiver".into(),
            ));
        } else {
            return Err(error(format!("{url:?} is not an http:// URL")));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default();
        if host.is_empty() || host.starts_with(':') {
            return Err(error(format!("{url:?} names no host")));
        }
        if let Some((_, port)) = host.rsplit_once(':').filter(|_| !host.ends_with(']')) {
            port.parse::<u16>()
                .map_err(|_| error(format!("{port:?} is not a port")))?;
        }
        Ok(Self {
            name: name.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
        })
    }

    /// The URL without credentials: what status, logs and metrics show.
    pub fn display_url(&self) -> String {
        let Some(rest) = self.url.strip_prefix("http://") else {
            return self.url.clone();
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        match rest[..end].rsplit_once('@') {
            Some((_, host)) => format!("http://{host}{}", &rest[end..]),
            None => self.url.clone(),
        }
    }
}

/// Parses `NAME:Header=Value` into (sink name, header name, value).
pub fn parse_header(given: &str) -> Result<(String, String, String), SpecError> {
    let error = |reason: String| SpecError::Header {
        given: given.to_owned(),
        reason,
    };
    let (name, header) = given
        .split_once(':')
        .ok_or_else(|| error("no ':' after the sink's name".into()))?;
    valid_name(name).map_err(error)?;
    let (key, value) = header
        .split_once('=')
        .ok_or_else(|| error("no '=' between the header and its value".into()))?;
    let key = key.trim();
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return Err(error(format!("{key:?} is not a header name")));
    }
    if key.to_ascii_lowercase().starts_with("ce-") || key.eq_ignore_ascii_case("content-type") {
        return Err(error(format!(
            "{key} is set by the CloudEvents binding and cannot be replaced"
        )));
    }
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(error("the value holds a line break".into()));
    }
    Ok((name.to_owned(), key.to_owned(), value.trim().to_owned()))
}

/// The sinks of `--sink` flags with the `--sink-header` flags given to
/// them; refuses a name given twice and a header for a sink not given.
pub fn assemble(sinks: &[String], headers: &[String]) -> Result<Vec<SinkSpec>, SpecError> {
    let mut specs: Vec<SinkSpec> = Vec::new();
    for given in sinks {
        let spec = SinkSpec::parse(given)?;
        if specs.iter().any(|s| s.name == spec.name) {
            return Err(SpecError::Sink {
                given: given.clone(),
                reason: format!("the name {:?} is given twice", spec.name),
            });
        }
        specs.push(spec);
    }
    for given in headers {
        let (name, key, value) = parse_header(given)?;
        let spec = specs
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| SpecError::Header {
                given: given.clone(),
                reason: format!("no --sink is named {name:?}"),
            })?;
        spec.headers.push((key, value));
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_is_a_name_and_an_http_url() {
        let spec = SinkSpec::parse("hook=http://127.0.0.1:9000/events").unwrap();
        assert_eq!(spec.name, "hook");
        assert_eq!(spec.url, "http://127.0.0.1:9000/events");
        let with_credentials = SinkSpec::parse("hook=http://kim:pw@example.com/in?x=1").unwrap();
        assert_eq!(with_credentials.display_url(), "http://example.com/in?x=1");
        assert!(!format!("{with_credentials:?}").contains("pw"));
    }

    #[test]
    fn bad_sinks_are_refused_with_an_example() {
        for bad in [
            "hook",
            "=http://h/",
            "ho ok=http://h/",
            "hook=ftp://h/",
            "hook=http:///x",
            "hook=http://h:99999/",
            "hook=https://h/",
        ] {
            let error = SinkSpec::parse(bad).unwrap_err().to_string();
            assert!(error.contains(SINK_EXAMPLE), "{bad}: {error}");
        }
        let twice = assemble(&["a=http://h/".into(), "a=http://g/".into()], &[]);
        assert!(twice.unwrap_err().to_string().contains("given twice"));
    }

    #[test]
    fn headers_go_to_their_sink_and_bad_ones_are_refused() {
        let specs = assemble(
            &["a=http://h/".into()],
            &["a:Authorization=Bearer x=y".into()],
        )
        .unwrap();
        assert_eq!(
            specs[0].headers,
            vec![("Authorization".into(), "Bearer x=y".into())]
        );
        for bad in [
            "a",
            "a:NoValue",
            "a:=v",
            "a:Bad Header=v",
            "a:ce-id=1",
            "b:X=1",
        ] {
            let error = assemble(&["a=http://h/".into()], &[bad.into()]).unwrap_err();
            assert!(error.to_string().contains(HEADER_EXAMPLE), "{bad}: {error}");
        }
    }
}
