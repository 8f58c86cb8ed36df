//! The iManage client's response decoding, fed arbitrary bytes as every kind of answer in both
//! API profiles. Properties: nothing panics; a body that is not JSON is always the retryable
//! "not JSON" error and a JSON body never is; a decoded user keeps no password; an error
//! message from a server is cut to a bounded length.
#![no_main]

use imanage::{decode, ApiProfile, Error};
use libfuzzer_sys::fuzz_target;

/// The "not JSON" classification must match what a JSON parser says of the body.
fn check<T>(is_json: bool, result: &Result<T, Error>) {
    if let Err(e) = result {
        assert_eq!(
            decode::is_not_json(e),
            !is_json,
            "is_json={is_json}, error: {e}"
        );
        // Errors name a path and a problem; they stay short whatever the body.
        assert!(e.to_string().len() < 400, "{e}");
    } else {
        assert!(is_json, "a body that is not JSON decoded");
    }
}

fuzz_target!(|body: &[u8]| {
    let is_json = serde_json::from_slice::<serde_json::Value>(body).is_ok();
    for api in [ApiProfile::V1, ApiProfile::V2] {
        let users = decode::users_page(body, api);
        check(is_json, &users);
        if let Ok((users, _)) = &users {
            for u in users {
                assert!(u.raw.get("password").is_none());
                assert!(u.extra.get("password").is_none());
            }
        }
        check(is_json, &decode::groups_page(body, api));
        check(is_json, &decode::members_page(body, api));
        check(is_json, &decode::workspaces_page(body, api));
        let user = decode::user(body, api);
        check(is_json, &user);
        if let Ok(u) = &user {
            assert!(u.raw.get("password").is_none());
        }
    }
    check(is_json, &decode::workspace_security(body));
    check(is_json, &decode::discovery(body));
    for status in [400, 401, 404, 429, 503] {
        let (code, message) = decode::error_details_of(status, body);
        assert!(message.chars().count() <= 201, "{message}");
        assert!(code.is_none_or(|c| c.chars().count() <= 201));
    }
});
