//! How long the client takes to decode list pages, without HTTP: a users page and a members
//! page of 1,000 records in the shape the simulator serves, decoded repeatedly.
//!
//! `cargo run --release -p imanage --example decode_pages`

use imanage::decode;
use imanage::ApiProfile;
use serde_json::json;
use std::time::Instant;

fn users_page(n: usize) -> Vec<u8> {
    let data: Vec<_> = (0..n)
        .map(|i| {
            json!({
                "id": format!("u{i:06}"), "login_name": format!("DOMAIN\\user{i}"),
                "email": format!("user{i}@firm.example"), "first_name": "Given", "last_name": format!("Family{i}"),
                "display_name": format!("Given Family{i}"), "active": i % 17 != 0, "user_type": "full",
                "groups": ["g0001", "g0002", format!("g{:04}", i % 300), format!("g{:04}", (i * 7) % 300), "g0100"],
                "default_database": "ACTIVE", "phone": "+1 555 0100", "department": "Litigation",
                "title": "Associate", "created_date": "2020-01-02T03:04:05Z"
            })
        })
        .collect();
    serde_json::to_vec(&json!({"data": data, "total_results": 20000})).expect("json")
}

fn members_page(n: usize) -> Vec<u8> {
    let data: Vec<_> = (0..n)
        .map(|i| {
            json!({"user_id": format!("u{i:06}"), "login_name": format!("DOMAIN\\user{i}"),
                   "email": format!("user{i}@firm.example")})
        })
        .collect();
    serde_json::to_vec(&json!({"data": data, "total_results": 5000})).expect("json")
}

fn time<F: FnMut()>(name: &str, rows: usize, mut f: F) {
    let rounds = 200;
    let mut samples = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..rounds {
            f();
        }
        samples.push(start.elapsed().as_secs_f64() / (rounds * rows) as f64);
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "{name:<28} {:>8.0} ns a row (median of 5)",
        samples[2] * 1e9
    );
}

fn main() {
    let users = users_page(1000);
    let members = members_page(1000);
    time("users page", 1000, || {
        let (items, _) = decode::users_page(&users, ApiProfile::V1).expect("users");
        std::hint::black_box(&items);
    });
    time("users page + into_account", 1000, || {
        let (items, _) = decode::users_page(&users, ApiProfile::V1).expect("users");
        let accounts: Vec<_> = items
            .into_iter()
            .map(|u| u.into_account("ACTIVE"))
            .collect();
        std::hint::black_box(&accounts);
    });
    time("members page", 1000, || {
        let (items, _) = decode::members_page(&members, ApiProfile::V1).expect("members");
        std::hint::black_box(&items);
    });
}
