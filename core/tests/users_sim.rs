//! `GraphClient::list_users_page` against the Graph simulator: every user once, page by page.

mod common;

use std::collections::HashSet;

use common::*;
use graph_sim::{FaultConfig, FaultKind, SeedUser, SimConfig};

async fn all_upns(client: &mfa_preload_core::graph::GraphClient, top: u32) -> (Vec<String>, usize) {
    let mut upns = Vec::new();
    let mut pages = 0;
    let mut next: Option<String> = None;
    loop {
        let page = client
            .list_users_page(next.as_deref(), top)
            .await
            .expect("page");
        pages += 1;
        assert!(page.users.len() <= top as usize);
        upns.extend(
            page.users
                .into_iter()
                .map(|u| u.user_principal_name.expect("upn")),
        );
        match page.next {
            Some(n) => next = Some(n),
            None => return (upns, pages),
        }
        assert!(pages < 100, "paging does not end");
    }
}

#[tokio::test]
async fn every_user_once_across_pages() {
    let sim = start_sim(SimConfig::default()).await;
    sim.add_users((0..25).map(|i| SeedUser::new(format!("user{i:02}@contoso.com"))));
    let client = client_for(&sim, &pem_secret(), test_options(4));
    let (upns, pages) = all_upns(&client, 10).await;
    assert_eq!(pages, 3);
    assert_eq!(upns.len(), 25);
    let unique: HashSet<&String> = upns.iter().collect();
    assert_eq!(unique.len(), 25);
    assert!(upns.contains(&"user24@contoso.com".to_string()));

    // A page size out of range is kept within Graph's limits.
    let (upns, pages) = all_upns(&client, 5000).await;
    assert_eq!((upns.len(), pages), (25, 1));
}

#[tokio::test]
async fn listing_survives_transient_faults() {
    let sim = start_sim(SimConfig::default()).await;
    sim.add_users((0..60).map(|i| SeedUser::new(format!("u{i}@contoso.com"))));
    sim.set_faults(FaultConfig::new(0.4, vec![FaultKind::Status503]));
    let client = client_for(&sim, &pem_secret(), test_options(10));
    let (upns, pages) = all_upns(&client, 3).await;
    assert_eq!((upns.len(), pages), (60, 20));
    assert_eq!(upns.iter().collect::<HashSet<_>>().len(), 60);
    assert!(sim.stats().faults_injected > 0);
}
