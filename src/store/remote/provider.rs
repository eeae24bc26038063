//! The object stores an index can live in, told apart by the scheme of `--index-dir`:
//! `s3://` (Amazon S3 and S3-compatible servers), `az://` (Azure Blob Storage) and `gs://`
//! (Google Cloud Storage). Everything above the client — generations, compare-and-swap on
//! CURRENT, leases, gc — is the same code for all three; this module only parses a
//! location (`parse_location`), sets up each client from its platform's standard variables
//! and names those variables in errors.

use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::{ClientConfigKey, RetryConfig};

use super::remote_error;
use crate::error::Result;
use crate::store::manifest::is_plain_relative;

/// Retries of a failed request, and the time they may take: an unreachable endpoint is
/// reported within seconds, not after the client's default three minutes.
const RETRIES: usize = 4;
const RETRY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Where Azurite, Azure's storage emulator, listens unless `AZURITE_BLOB_STORAGE_URL` says
/// otherwise (the client's own default).
const AZURITE_DEFAULT: &str = "http://127.0.0.1:10000";

/// An object-storage service, by the scheme of its locations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Provider {
    S3,
    Azure,
    Gcs,
}

/// A client of one bucket (an Azure container), and what identifies the service it talks
/// to: the same bucket name on two endpoints is two indexes, mirrored apart.
pub(super) struct Connected {
    pub store: Arc<dyn ObjectStore>,
    pub service: String,
}

impl Provider {
    const ALL: [Provider; 3] = [Provider::S3, Provider::Azure, Provider::Gcs];

    /// The provider of `location`, if it is an object-store URL.
    pub fn of(location: &str) -> Option<Provider> {
        Provider::ALL
            .into_iter()
            .find(|p| location.starts_with(p.scheme()))
    }

    /// `s3://`, `az://` or `gs://`.
    pub fn scheme(self) -> &'static str {
        match self {
            Provider::S3 => "s3://",
            Provider::Azure => "az://",
            Provider::Gcs => "gs://",
        }
    }

    /// What a location of this provider looks like, for error messages.
    pub fn form(self) -> &'static str {
        match self {
            Provider::S3 => {
                "s3://BUCKET/PREFIX with a bucket name of 3 to 63 lowercase letters, digits, dots and hyphens (credentials go in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, never in the URL)"
            }
            Provider::Azure => {
                "az://CONTAINER/PREFIX with a container name of 3 to 63 lowercase letters, digits and hyphens (the account goes in AZURE_STORAGE_ACCOUNT_NAME, its key in AZURE_STORAGE_ACCOUNT_KEY, never in the URL)"
            }
            Provider::Gcs => {
                "gs://BUCKET/PREFIX with a bucket name of 3 to 63 lowercase letters, digits, dots, hyphens and underscores (credentials go in GOOGLE_SERVICE_ACCOUNT or GOOGLE_APPLICATION_CREDENTIALS, never in the URL)"
            }
        }
    }

    /// True when `name` is a valid bucket (container) name here.
    pub fn valid_bucket(self, name: &str) -> bool {
        let allowed = |b: u8| match self {
            Provider::S3 => b == b'.',
            Provider::Azure => false,
            Provider::Gcs => b == b'.' || b == b'_',
        };
        (3..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || allowed(b))
    }

    /// The variables to check when the service denies access.
    pub fn credential_hint(self) -> &'static str {
        match self {
            Provider::S3 => {
                "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials) and what they may do in this bucket"
            }
            Provider::Azure => {
                "check AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY (or AZURE_STORAGE_SAS_KEY, or the identity's AZURE_* variables) and what they may do in this container"
            }
            Provider::Gcs => {
                "check GOOGLE_SERVICE_ACCOUNT (or GOOGLE_APPLICATION_CREDENTIALS) and what the account may do in this bucket"
            }
        }
    }

    /// The variables that say where the service is, for a request that got no answer.
    pub fn endpoint_hint(self) -> &'static str {
        match self {
            Provider::S3 => "check AWS_ENDPOINT_URL (or AWS_REGION)",
            Provider::Azure => {
                "check AZURE_STORAGE_ENDPOINT (AZURITE_BLOB_STORAGE_URL for the emulator) and AZURE_STORAGE_ACCOUNT_NAME"
            }
            Provider::Gcs => "check GOOGLE_BASE_URL (or the service account's gcs_base_url)",
        }
    }

    /// A client of `bucket`, set up from this provider's standard variables only. Its
    /// builder is never formatted: its debug output holds the secret.
    pub fn connect(self, bucket: &str) -> Result<Connected, String> {
        // reqwest, as object_store uses it here, has no TLS crypto of its own: ring is
        // installed once for the process (an earlier install is as good).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let retry = RetryConfig {
            max_retries: RETRIES,
            retry_timeout: RETRY_TIMEOUT,
            ..RetryConfig::default()
        };
        let built = match self {
            Provider::S3 => {
                let builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry);
                let setting = |key: AmazonS3ConfigKey| builder.get_config_value(&key);
                let endpoint = setting(AmazonS3ConfigKey::S3Endpoint)
                    .or_else(|| setting(AmazonS3ConfigKey::Endpoint))
                    .unwrap_or_default();
                let allow_http = setting(AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp));
                refuse_plain_http(&endpoint, allow_http, "AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP")?;
                builder
                    .build()
                    .map(|s| (Arc::new(s) as Arc<dyn ObjectStore>, endpoint))
            }
            Provider::Azure => {
                let builder = MicrosoftAzureBuilder::from_env()
                    .with_container_name(bucket)
                    .with_retry(retry);
                let setting = |key: AzureConfigKey| builder.get_config_value(&key);
                let emulator = setting(AzureConfigKey::UseEmulator).is_some_and(|v| truthy(&v));
                let endpoint = match emulator {
                    // The emulator is plain http on loopback by design.
                    true => std::env::var("AZURITE_BLOB_STORAGE_URL")
                        .unwrap_or_else(|_| AZURITE_DEFAULT.to_string()),
                    false => {
                        let endpoint = setting(AzureConfigKey::Endpoint).unwrap_or_default();
                        let allow_http =
                            setting(AzureConfigKey::Client(ClientConfigKey::AllowHttp));
                        refuse_plain_http(
                            &endpoint,
                            allow_http,
                            "AZURE_STORAGE_ENDPOINT",
                            "AZURE_ALLOW_HTTP",
                        )?;
                        endpoint
                    }
                };
                let account = setting(AzureConfigKey::AccountName).unwrap_or_default();
                builder.build().map(|s| {
                    (
                        Arc::new(s) as Arc<dyn ObjectStore>,
                        format!("az {account} {endpoint}"),
                    )
                })
            }
            Provider::Gcs => {
                let builder = GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry);
                let base_url = builder
                    .get_config_value(&GoogleConfigKey::BaseUrl)
                    .unwrap_or_default();
                builder.build().map(|s| {
                    (
                        Arc::new(s) as Arc<dyn ObjectStore>,
                        format!("gs {base_url}"),
                    )
                })
            }
        };
        let (store, service) = built.map_err(|e| format!("cannot set up the client: {e}"))?;
        Ok(Connected { store, service })
    }
}

fn truthy(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "1" | "true" | "on" | "yes" | "y"
    )
}

/// An `http://` endpoint is used only when its variable allowing plain http is set: a
/// typo must not send requests, signed or not, unencrypted.
fn refuse_plain_http(
    endpoint: &str,
    allow_http: Option<String>,
    endpoint_variable: &str,
    allow_variable: &str,
) -> Result<(), String> {
    if endpoint.starts_with("http://") && !allow_http.is_some_and(|v| truthy(&v)) {
        return Err(format!(
            "{endpoint_variable} is a plain http:// endpoint: set {allow_variable}=true to allow an unencrypted connection, or use https://"
        ));
    }
    Ok(())
}

/// The object-store location (`s3://…`, `az://…`, `gs://…`) `path` names, if it names one.
pub(in crate::store) fn location_of(path: &Path) -> Option<&str> {
    path.to_str().filter(|p| Provider::of(p).is_some())
}

/// The provider, the bucket and the prefix of `s3://BUCKET/PREFIX` (or `az://`, `gs://`;
/// the prefix may be empty).
pub(super) fn parse_location(location: &str) -> Result<(Provider, &str, &str)> {
    let provider = Provider::of(location).unwrap_or(Provider::S3);
    let rest = location.strip_prefix(provider.scheme()).unwrap_or(location);
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = prefix.trim_end_matches('/');
    if !provider.valid_bucket(bucket) {
        // A URL with credentials in it is not repeated.
        let shown = if location.contains('@') {
            "the --index-dir URL"
        } else {
            location
        };
        return Err(remote_error(shown, format!("not {}", provider.form())));
    }
    if !prefix.is_empty() && !is_plain_relative(prefix) {
        return Err(remote_error(
            location,
            "the prefix after the bucket must be a plain path (no empty, . or .. parts)",
        ));
    }
    Ok((provider, bucket, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_parsed_and_credentials_in_them_never_repeated() {
        for (location, parsed) in [
            ("s3://codeq/team/a", (Provider::S3, "codeq", "team/a")),
            ("s3://codeq/", (Provider::S3, "codeq", "")),
            ("s3://my.bucket-1", (Provider::S3, "my.bucket-1", "")),
            (
                "az://codeq-index/team",
                (Provider::Azure, "codeq-index", "team"),
            ),
            (
                "gs://my_bucket.1/a/b",
                (Provider::Gcs, "my_bucket.1", "a/b"),
            ),
        ] {
            assert_eq!(parse_location(location).unwrap(), parsed, "{location}");
        }
        let leaked = parse_location("s3://AKID:hunter2@codeq/team").unwrap_err();
        assert!(!leaked.to_string().contains("hunter2"), "{leaked}");
        let leaked = parse_location("az://acct:a2V5@codeq/team").unwrap_err();
        assert!(!leaked.to_string().contains("a2V5"), "{leaked}");
        assert!(leaked.to_string().contains("AZURE_STORAGE_ACCOUNT_KEY"));
        for bad in [
            "s3://Codeq/x",
            "s3://ab/x",
            "s3://codeq/../x",
            "s3://codeq/a//b",
            "s3://my_bucket/x",
            "az://my.container/x",
            "gs://UPPER/x",
        ] {
            assert!(parse_location(bad).is_err(), "{bad}");
        }
        assert!(location_of(Path::new("gs://codeq/team")).is_some());
        assert!(location_of(Path::new("az://codeq/team")).is_some());
        assert!(location_of(Path::new("https://codeq/team")).is_none());
    }
}
