//! Publishing signed manifests and channel records. The server checks the
//! publisher's signature against the keys it accepts for the app, so a stolen
//! push token alone cannot publish anything clients would run.

use std::sync::Arc;

use ferry_protocol::channel::MAX_CHANNEL_BYTES;
use ferry_protocol::manifest::MAX_MANIFEST_BYTES;
use ferry_protocol::messages::PublishResponse;
use ferry_protocol::names::{validate_app, validate_channel};
use ferry_protocol::rotation::{check_rotation, effective_keys};
use ferry_protocol::signed::{KIND_CHANNEL, KIND_MANIFEST};
use ferry_protocol::{ChannelRecord, Envelope, Manifest, ManifestId, PublicKey};
use ferry_store::Backend;
use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::api::{blocking, CBOR};
use crate::auth::require_push_token;
use crate::body::{full, read_limited, require_content_type, RespBody};
use crate::error::ApiError;
use crate::serve::ServerState;

/// Envelope overhead allowed on top of the body limit.
const ENVELOPE_SLACK: usize = 4096;

fn forbidden(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, m)
}

/// Keys the server accepts for `app`: configured ones, else the pinned one,
/// else (first publish) the envelope's first signer, which gets pinned;
/// plus the keys a key rotation announced, minus those it revoked.
fn accepted_keys(
    st: &ServerState,
    store: &dyn Backend,
    app: &str,
    env: &Envelope,
    kind: &'static str,
    may_pin: bool,
) -> Result<Vec<PublicKey>, ApiError> {
    let rotated = store.rotated_app_keys(app)?;
    let revoked = store.revoked_app_keys(app)?;
    let base = match st.config.app_keys.get(app) {
        Some(keys) => keys.clone(),
        None => store.app_keys(app)?,
    };
    if !base.is_empty() || !rotated.is_empty() || !revoked.is_empty() || !may_pin {
        return Ok(effective_keys(&base, &rotated, &revoked));
    }
    let Some(first) = env.signers().first().copied() else {
        return Err(forbidden("document carries no signature"));
    };
    // Only pin a key whose signature on this very document checks out.
    env.verify(kind, &[first])
        .map_err(|e| forbidden(e.to_string()))?;
    tracing::info!("app {app}: pinning publisher key {first} (first use)");
    Ok(store.pin_app_key(app, first)?)
}

pub async fn put_manifest(
    st: Arc<ServerState>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, ApiError> {
    require_push_token(req.headers(), st.config.push_token.as_deref())?;
    require_content_type(req.headers(), CBOR)?;
    let max = MAX_MANIFEST_BYTES + ENVELOPE_SLACK;
    let body = read_limited(req.into_body(), max, "manifest").await?;
    let st2 = st.clone();
    let (id, created) = blocking(&st, move |store| {
        let env = Envelope::decode(&body, max)?;
        if env.kind != KIND_MANIFEST {
            return Err(ApiError::bad_request(format!(
                "expected a signed manifest, got a {:?}",
                env.kind
            )));
        }
        let manifest = Manifest::decode(&env.body)?;
        let keys = accepted_keys(&st2, store, &manifest.app, &env, KIND_MANIFEST, true)?;
        env.verify(KIND_MANIFEST, &keys).map_err(|e| {
            forbidden(format!(
                "{e}; this server accepts for app {}: {}",
                manifest.app,
                list(&keys)
            ))
        })?;
        let id = ManifestId::of(&env.body);
        let created = store.put_manifest(&body, id, &manifest)?;
        if created {
            tracing::info!(
                "published {} {} as manifest {}",
                manifest.app,
                manifest.version,
                id.short()
            );
        }
        Ok((id, created))
    })
    .await?;
    Response::builder()
        .status(if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        })
        .header(header::CONTENT_TYPE, CBOR)
        .body(full(PublishResponse { manifest_id: id }.encode()))
        .map_err(ApiError::internal)
}

pub async fn put_channel(
    st: Arc<ServerState>,
    app: &str,
    channel: &str,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, ApiError> {
    require_push_token(req.headers(), st.config.push_token.as_deref())?;
    validate_app(app).map_err(|e| ApiError::bad_request(e.to_string()))?;
    validate_channel(channel).map_err(|e| ApiError::bad_request(e.to_string()))?;
    require_content_type(req.headers(), CBOR)?;
    let max = MAX_CHANNEL_BYTES + ENVELOPE_SLACK;
    let body = read_limited(req.into_body(), max, "channel record").await?;
    let (app, channel) = (app.to_string(), channel.to_string());
    let st2 = st.clone();
    let published = blocking(&st, move |store| {
        let env = Envelope::decode(&body, max)?;
        if env.kind != KIND_CHANNEL {
            return Err(ApiError::bad_request(format!(
                "expected a signed channel record, got a {:?}",
                env.kind
            )));
        }
        let rec = ChannelRecord::decode(&env.body)?;
        if rec.app != app || rec.channel != channel {
            return Err(ApiError::bad_request(format!(
                "record is for {}/{}, but was sent to {app}/{channel}",
                rec.app, rec.channel
            )));
        }
        let keys = accepted_keys(&st2, store, &app, &env, KIND_CHANNEL, false)?;
        if keys.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("app {app} has no published version yet; push one first"),
            ));
        }
        env.verify(KIND_CHANNEL, &keys).map_err(|e| {
            forbidden(format!(
                "{e}; this server accepts for app {app}: {}",
                list(&keys)
            ))
        })?;
        let before = store
            .get_channel(&app, &channel)?
            .and_then(|b| Envelope::decode(&b, b.len()).ok())
            .and_then(|e| ChannelRecord::decode(&e.body).ok())
            .map(|r| r.manifest_id);
        let revoked = check_rotation(&env, &rec, &keys).map_err(forbidden)?;
        store.put_channel_rotating(&body, &rec, &keys)?;
        if !rec.keys.is_empty() {
            tracing::warn!(
                "app {app}: publisher keys rotated to {} (revoked: {})",
                list(&rec.keys),
                if revoked.is_empty() {
                    "none".into()
                } else {
                    list(&revoked)
                }
            );
        }
        tracing::info!(
            "channel {app}/{channel} -> {} (sequence {})",
            rec.version,
            rec.sequence
        );
        Ok((rec, before))
    })
    .await?;
    // Clients move from the channel's previous version or the fallback
    // (and fresh installs from nothing): prepare those groups now.
    let (rec, before) = published;
    let mut from: Vec<Option<ManifestId>> = vec![before];
    if let Some(p) = &rec.policy.previous {
        from.push(Some(p.manifest_id));
    }
    from.push(None);
    from.retain(|h| *h != Some(rec.manifest_id));
    from.dedup();
    let st3 = st.clone();
    tokio::task::spawn_blocking(move || {
        {
            let _one_at_a_time = st3.groups.warming();
            for have in &from {
                st3.groups
                    .warm(st3.background_store.as_ref(), rec.manifest_id, *have);
            }
        }
        for have in from {
            st3.groups
                .refine(st3.background_store.as_ref(), rec.manifest_id, have);
        }
    });
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(crate::body::empty())
        .map_err(ApiError::internal)
}

fn list(keys: &[PublicKey]) -> String {
    keys.iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
