//! Accuracy against the simulator's ground truth: pairwise precision and recall of the persons
//! the resolver builds from a generated firm.

use graph::{resolve, Input, ResolveConfig};
use imanage_sim::firm::{generate, Firm, FirmSpec};
use std::collections::{HashMap, HashSet};

/// The firm's rows as the store would hold them.
pub fn input_from_firm(firm: &Firm) -> Input {
    let mut input = Input::default();
    for db in &firm.databases {
        for u in db.users.values() {
            input.accounts.push(model::Account {
                database: db.customer_id.clone(),
                user_id: u.id.clone(),
                login_name: Some(u.login_name.clone()),
                email: u.email.clone(),
                first_name: Some(u.first_name.clone()),
                last_name: Some(u.last_name.clone()),
                display_name: u.display_name.clone(),
                active: u.active,
                user_type: Some(u.user_type.clone()),
                ..model::Account::default()
            });
        }
        for g in db.groups.values() {
            input.groups.push(model::Group {
                database: db.customer_id.clone(),
                group_id: g.id.clone(),
                name: Some(g.name.clone()),
                ..model::Group::default()
            });
            for m in &g.members {
                input.memberships.push(model::Membership {
                    database: db.customer_id.clone(),
                    group_id: g.id.clone(),
                    user_id: m.clone(),
                });
            }
        }
    }
    input
}

pub fn config_for(firm: &Firm) -> ResolveConfig {
    let mut login = firm.truth.login_domains.clone();
    for group in &firm.truth.email_domain_aliases {
        login.extend(group.iter().cloned());
    }
    ResolveConfig {
        email_domain_aliases: firm.truth.email_domain_aliases.clone(),
        login_domain_aliases: vec![login],
        ..ResolveConfig::default()
    }
}

#[test]
fn precision_and_recall_against_the_ground_truth() {
    let firm = generate(&FirmSpec {
        seed: 1,
        databases: 10,
        people: 20_000,
        ..FirmSpec::default()
    });
    let started = std::time::Instant::now();
    let g = resolve(input_from_firm(&firm), &config_for(&firm));
    let elapsed = started.elapsed();

    // Pairs of accounts in the same person, predicted and true.
    let key = |db: &str, id: &str| format!("{db}/{id}");
    let mut predicted: HashSet<(String, String)> = HashSet::new();
    for p in g.persons() {
        let accounts: Vec<String> = p
            .accounts()
            .map(|a| key(a.database(), a.user_id()))
            .collect();
        for i in 0..accounts.len() {
            for j in i + 1..accounts.len() {
                predicted.insert((accounts[i].clone(), accounts[j].clone()));
            }
        }
    }
    let mut by_person: HashMap<&str, Vec<&str>> = HashMap::new();
    for (account, person) in &firm.truth.accounts {
        by_person.entry(person).or_default().push(account);
    }
    let mut truth: HashSet<(String, String)> = HashSet::new();
    for accounts in by_person.values_mut() {
        accounts.sort();
        for i in 0..accounts.len() {
            for j in i + 1..accounts.len() {
                truth.insert((accounts[i].to_string(), accounts[j].to_string()));
            }
        }
    }
    let true_positive = predicted.intersection(&truth).count() as f64;
    let precision = true_positive / predicted.len().max(1) as f64;
    let recall = true_positive / truth.len().max(1) as f64;
    println!(
        "seed 1, 10 databases, 20,000 people: {} accounts into {} persons in {:.2} s; pairwise precision {precision:.4}, recall {recall:.4} ({} true pairs, {} predicted)",
        firm.truth.accounts.len(),
        g.persons().len(),
        elapsed.as_secs_f64(),
        truth.len(),
        predicted.len()
    );
    let wrong: Vec<_> = predicted.difference(&truth).take(5).collect();
    let missed: Vec<_> = truth.difference(&predicted).take(5).collect();
    assert!(
        precision >= 0.995,
        "precision {precision}; e.g. wrongly merged {wrong:?}"
    );
    assert!(recall >= 0.99, "recall {recall}; e.g. missed {missed:?}");

    // No two different people who share a login are merged.
    for (login, people) in &firm.truth.mess.shared_logins {
        let persons: HashSet<&str> = g.person_by_login(login).iter().map(|p| p.id()).collect();
        assert!(
            persons.len() >= people.len().min(2),
            "login {login} is held by {} people but resolves to {persons:?}",
            people.len()
        );
    }
}
