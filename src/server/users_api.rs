//! `/api/users`: the admin's user operations over HTTP, the same operations (and
//! audit events and session endings) as `aspjwt user`, from `crate::users`.

use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::http::{ApiError, Body, json as json_response};
use super::{AppState, Ctx, now};
use crate::users::{self, Actor, UserError};

fn user_error(e: UserError) -> ApiError {
    match e {
        UserError::Invalid(m) => ApiError::bad_request("invalid", m),
        UserError::Store(crate::store::StoreError::DuplicateEmail(_)) => {
            ApiError::new(StatusCode::CONFLICT, "email_taken", "a user with that email already exists")
        }
        UserError::Store(crate::store::StoreError::NoSuchUser(_)) => {
            ApiError::new(StatusCode::NOT_FOUND, "no_such_user", "no such user")
        }
        UserError::Store(crate::store::StoreError::LastAdmin(_)) => ApiError::new(
            StatusCode::CONFLICT,
            "last_admin",
            "this is the last enabled admin; make another user admin first",
        ),
        UserError::Store(s) => s.into(),
    }
}

fn actor(ctx: &Ctx) -> Actor {
    Actor { ip: Some(ctx.ip.to_string()), user_agent: ctx.user_agent.clone(), request_id: Some(ctx.request_id.clone()) }
}

pub async fn handle(state: &AppState, parts: Parts, body: Incoming, ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let rest = parts.uri.path().trim_start_matches("/api/users").trim_matches('/').to_string();
    let actor = actor(ctx);
    match (&parts.method, rest.as_str()) {
        (&Method::GET, "") => {
            let list = state.blocking(|s| s.list_users()).await?;
            Ok(json_response(StatusCode::OK, &json!({"users": list.iter().map(users::public).collect::<Vec<_>>()})))
        }
        (&Method::POST, "") => {
            let b = super::auth::json_body(state, &parts, body).await?;
            let text = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_string);
            let (Some(email), Some(name), Some(role)) = (text("email"), text("name"), text("role")) else {
                return Err(ApiError::bad_request("missing_fields", "email, name and role are required"));
            };
            let pw = text("password");
            let (user, generated) = tokio::task::spawn_blocking({
                let store = state.store.clone();
                move || users::create(&*store, &email, &name, &role, pw, &actor, now())
            })
            .await
            .map_err(|_| ApiError::internal())?
            .map_err(user_error)?;
            let mut out = json!({"user": users::public(&user)});
            if let Some(pw) = generated {
                out["password"] = pw.into();
            }
            Ok(json_response(StatusCode::CREATED, &out))
        }
        (&Method::GET, id) if !id.contains('/') => {
            let id = id.to_string();
            let user = state
                .blocking(move |s| s.user_by_id(&id))
                .await?
                .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no_such_user", "no such user"))?;
            Ok(json_response(StatusCode::OK, &json!({"user": users::public(&user)})))
        }
        (&Method::PATCH, id) if !id.contains('/') => {
            let b = super::auth::json_body(state, &parts, body).await?;
            let id = id.to_string();
            let user = state
                .blocking(move |s| s.user_by_id(&id))
                .await?
                .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no_such_user", "no such user"))?;
            let wrong = |f: &str, t: &str| ApiError::bad_request("invalid", format!("{f} must be {t}"));
            let disabled = match b.get("disabled") {
                None => None,
                Some(v) => Some(v.as_bool().ok_or_else(|| wrong("disabled", "true or false"))?),
            };
            let text = |f: &str| match b.get(f) {
                None => Ok(None),
                Some(v) => v.as_str().map(|s| Some(s.to_string())).ok_or_else(|| wrong(f, "a string")),
            };
            // A role that is already the user's is no change (and ends no session).
            let role = text("role")?.filter(|r| *r != user.role);
            let password = text("password")?;
            if b.get("disabled").is_none() && b.get("role").is_none() && password.is_none() {
                return Err(ApiError::bad_request("missing_fields", "give disabled, role or password"));
            }
            // Every part is checked before any is applied: a refused PATCH changes nothing.
            if let Some(r) = &role {
                users::check_role(r).map_err(user_error)?;
            }
            if let Some(pw) = &password {
                users::check_password(pw).map_err(user_error)?;
            }
            let admin = crate::names::ADMIN_ROLE;
            let stays_admin = role.as_deref().unwrap_or(&user.role) == admin && !disabled.unwrap_or(user.disabled);
            if user.role == admin && !user.disabled && !stays_admin {
                let admins = state.blocking(|s| s.list_users()).await?;
                if admins.iter().filter(|u| u.role == admin && !u.disabled).count() <= 1 {
                    return Err(user_error(UserError::Store(crate::store::StoreError::LastAdmin(user.email.clone()))));
                }
            }
            let store = state.store.clone();
            let (user, ended) = tokio::task::spawn_blocking(move || -> Result<_, UserError> {
                let mut ended = 0;
                let mut user = user;
                let now = now();
                // The changes that may be refused (the last admin) come first.
                if let Some(r) = &role {
                    let (u, n) = users::set_role(&*store, &user.email, r, &actor, now)?;
                    (user, ended) = (u, ended + n);
                }
                if let Some(d) = disabled {
                    let (u, n) = users::set_disabled(&*store, &user.email, d, &actor, now)?;
                    (user, ended) = (u, ended + n);
                }
                if let Some(pw) = &password {
                    let (u, n) = users::set_password(&*store, &user.email, pw, &actor, now)?;
                    (user, ended) = (u, ended + n);
                }
                Ok((user, ended))
            })
            .await
            .map_err(|_| ApiError::internal())?
            .map_err(user_error)?;
            if ended > 0 {
                // Out at once here, not at the next poll of the revocation feed (which
                // also observes them in the session-age histogram, as for the CLI's).
                state.sync_revocations().await;
            }
            Ok(json_response(StatusCode::OK, &json!({"user": users::public(&user), "sessionsEnded": ended})))
        }
        (_, "") => Err(ApiError::method_not_allowed("GET, POST")),
        (_, id) if !id.contains('/') => Err(ApiError::method_not_allowed("GET, PATCH")),
        _ => Err(ApiError::not_found()),
    }
}
