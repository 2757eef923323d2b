//! A deployment over real TCP sockets on 127.0.0.1 with mutual TLS: the files
//! `deploy init` writes, every role's gRPC server or client in one tokio runtime, and the
//! failures the deployment must survive. Each test compares against the in-process
//! simulation of the same scenario and seed: equal model digests mean the decrypted
//! aggregates were bit-identical.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use spddl_experiments::deploy;
use spddl_experiments::driver::federation;
use spddl_proto::wire::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_secure_rounds_over_mutual_tls_equal_the_simulation() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 30.0);
    let expected = simulated_digests();
    let stop = Stop::new();
    let agg = aggregator(&out, &stop);
    let (fogs, holders) = start_fogs_and_holders(&out, &[0, 1], &[1, 2, 3, 4, 5], &stop);
    let clients = start_clients(&out, &stop);
    let report = within(300, agg).await.unwrap().unwrap();
    assert_every_round_complete(&report, &expected);
    for r in &report.rounds {
        assert_eq!(r.holders_used, vec![1, 2, 3]);
        assert!(r.silent.is_empty() && r.blamed.is_empty());
        assert!(r.accuracy.unwrap() > 0.5, "{r:?}");
    }
    for c in clients {
        let uploads = within(30, c).await.unwrap().unwrap();
        assert_eq!(uploads.len(), ROUNDS as usize);
    }
    // t = 3 of 5: the aggregator asks the three lowest holders; 4 and 5 are never needed.
    let answered: Vec<usize> = {
        let mut v = Vec::new();
        for h in holders {
            v.push(within(30, h).await.unwrap().unwrap());
        }
        v
    };
    let r = ROUNDS as usize;
    assert_eq!(answered, vec![r, r, r, 0, 0]);
    stop.fire();
    for (_, f) in fogs {
        within(30, f).await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fog_killed_mid_round_loses_no_update_its_clients_fail_over() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 30.0);
    let expected = simulated_digests();
    let stop = Stop::new();
    let agg = aggregator(&out, &stop);
    let (fogs, _holders) = start_fogs_and_holders(&out, &[0, 1], &[1, 2, 3, 4, 5], &stop);
    // Round 0 is open with half the clients assigned to fog 0; kill it before they upload.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (f, task) in &fogs {
        if *f == 0 {
            task.abort();
        }
    }
    let clients = start_clients(&out, &stop);
    let report = within(300, agg).await.unwrap().unwrap();
    assert_every_round_complete(&report, &expected);
    let mut failed_over = 0;
    for c in clients {
        let uploads = within(30, c).await.unwrap().unwrap();
        assert!(uploads.iter().all(|u| u.fog == 1), "fog 0 is dead");
        failed_over += uploads.iter().filter(|u| u.failed_over > 0).count();
    }
    assert!(
        failed_over >= 1,
        "some client had fog 0 first and failed over"
    );
    stop.fire();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rounds_complete_with_l_minus_t_key_holders_down() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 2.5);
    let expected = simulated_digests();
    let stop = Stop::new();
    let agg = aggregator(&out, &stop);
    // Holders 1 and 2 (ℓ − t = 2) never start.
    let (_fogs, _holders) = start_fogs_and_holders(&out, &[0, 1], &[3, 4, 5], &stop);
    let _clients = start_clients(&out, &stop);
    let report = within(300, agg).await.unwrap().unwrap();
    assert_every_round_complete(&report, &expected);
    for r in &report.rounds {
        assert_eq!(r.silent, vec![1, 2], "round {}", r.round);
        assert_eq!(r.holders_used, vec![3, 4, 5], "round {}", r.round);
    }
    stop.fire();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_t_minus_one_key_holders_the_run_stops_cleanly_and_resumes_once_they_return() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 1.0);
    let stop = Stop::new();
    let agg = aggregator(&out, &stop);
    // Only holders 1 and 2 of a 3-of-5 key: no round can be decrypted.
    let (fogs, holders) = start_fogs_and_holders(&out, &[0, 1], &[1, 2], &stop);
    let clients = start_clients(&out, &stop);
    // The aggregator gives up after its 3 attempts (aggregator.toml `round_attempts`) with
    // one line saying what and why, instead of retrying for ever.
    let failure = within(120, agg).await.unwrap().unwrap_err().to_string();
    for words in [
        "round 0 failed 3 attempt(s), the run stops",
        "only 2 valid decryption shares, 3 needed; silent key holders (down, or refusing: their logs say why): 3, 4, 5",
        "its stored updates are kept: restart the aggregator once enough key holders run",
    ] {
        assert!(failure.contains(words), "{words:?} not in {failure:?}");
    }
    assert_eq!(failure.lines().count(), 1, "{failure}");
    // Every peer learns it while the aggregator lingers and stops with an error, not a hang.
    for c in clients {
        let e = within(30, c).await.unwrap().unwrap_err().to_string();
        assert!(
            e.contains("the aggregator stopped the run: round 0 could not complete"),
            "{e}"
        );
    }
    for (f, task) in fogs {
        let e = within(30, task).await.unwrap().unwrap_err().to_string();
        assert!(
            e.contains(&format!("fog {f}: the aggregator stopped the run: round 0")),
            "{e}"
        );
    }
    for h in holders {
        let e = within(30, h).await.unwrap().unwrap_err().to_string();
        assert!(e.contains("the aggregator stopped the run"), "{e}");
    }
    stop.fire();

    // Nothing accepted is lost: with every holder back, a restarted aggregator resumes round
    // 0 from the updates stored in its last attempt (no client uploads round 0 again) and the
    // run ends with the simulation's models.
    let stop = Stop::new();
    let agg = aggregator(&out, &stop);
    let (_fogs, _holders) = start_fogs_and_holders(&out, &[0, 1], &[1, 2, 3, 4, 5], &stop);
    let clients = start_clients(&out, &stop);
    let report = within(300, agg).await.unwrap().unwrap();
    assert_every_round_complete(&report, &simulated_digests());
    for c in clients {
        let uploads = within(30, c).await.unwrap().unwrap();
        let rounds: Vec<u64> = uploads.iter().map(|u| u.round).collect();
        assert!(!rounds.contains(&0), "round 0 uploaded again: {rounds:?}");
    }
    stop.fire();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_fog_and_key_holder_rejoin_without_operator_action() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 2.5);
    let expected = simulated_digests();
    let stop = Stop::new();
    let agg = aggregator(&out, &stop);
    let (fogs, holders) = start_fogs_and_holders(&out, &[0, 1], &[1, 2, 3, 4, 5], &stop);
    let clients = start_clients(&out, &stop);
    // Round 0 is open: kill fog 0 and key holder 1, then start them again from their files.
    within(60, wait_for_round(&out, 0)).await;
    fogs[0].1.abort();
    holders[0].abort();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_fog0, holder1) = start_fogs_and_holders(&out, &[0], &[1], &stop);
    // Once round 1 is announced, kill fog 1 and holders 2 and 3: the last round can only
    // complete through the restarted fog 0, with the restarted holder 1 among its t shares.
    within(120, wait_for_round(&out, 1)).await;
    fogs[1].1.abort();
    holders[1].abort();
    holders[2].abort();
    let report = within(300, agg).await.unwrap().unwrap();
    assert_every_round_complete(&report, &expected);
    let last = report.rounds.last().unwrap();
    assert_eq!(last.silent, vec![2, 3], "{last:?}");
    assert_eq!(last.holders_used, vec![1, 4, 5], "{last:?}");
    for c in clients {
        let uploads = within(30, c).await.unwrap().unwrap();
        let final_round = uploads.iter().find(|u| u.round == ROUNDS - 1).unwrap();
        assert_eq!(final_round.fog, 0, "fog 1 is dead: {final_round:?}");
    }
    stop.fire();
    let answered = within(30, holder1.into_iter().next().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(answered >= 1, "the restarted holder answered nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_aggregator_restarted_between_rounds_resumes_from_its_store() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 30.0);
    let expected = simulated_digests();
    let stop = Stop::new();
    let first = Stop::new();
    let agg = aggregator(&out, &first);
    let (_fogs, _holders) = start_fogs_and_holders(&out, &[0, 1], &[1, 2, 3, 4, 5], &stop);
    let clients = start_clients(&out, &stop);
    within(300, wait_for_round(&out, 2)).await;
    first.fire();
    let partial = within(60, agg).await.unwrap().unwrap();
    assert!(
        (2..ROUNDS as usize).contains(&partial.rounds.len()),
        "stopped after rounds 0 and 1: {:?}",
        partial.rounds.iter().map(|r| r.round).collect::<Vec<_>>()
    );
    // Start again on the same state file: it resumes at round 2, not round 0.
    let agg = aggregator(&out, &stop);
    let report = within(300, agg).await.unwrap().unwrap();
    assert_every_round_complete(&report, &expected);
    assert_eq!(
        report.rounds[..2],
        partial.rounds[..2],
        "stored rounds unchanged"
    );
    for c in clients {
        let uploads = within(30, c).await.unwrap().unwrap();
        let mut rounds: Vec<u64> = uploads.iter().map(|u| u.round).collect();
        rounds.dedup();
        assert_eq!(rounds, vec![0, 1, 2]);
    }
    stop.fire();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unregistered_identities_and_foreign_certificates_are_refused() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 30.0);
    let stop = Stop::new();
    let agg = aggregator(&out, &stop);
    let (_fogs, _holders) = start_fogs_and_holders(&out, &[0, 1], &[1, 2, 3, 4, 5], &stop);

    // Client 0's id with a signing key the registry does not know: the fog refuses it.
    let mut setup = deploy::client_setup(&out.join("client-0.toml"), false).unwrap();
    let data = federation(&scenario()).unwrap().client_data.swap_remove(0);
    let stranger = spddl_crypto::identity::SigningKey::generate(&mut spddl_crypto::Entropy::os());
    setup.client = std::sync::Arc::new(spddl_client_trainer::client::Client::new(
        spddl_proto::ClientId(0),
        stranger,
        data,
    ));
    let err = within(
        60,
        spddl_client_trainer::grpc::run_client(setup, std::future::pending()),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("refused the upload") && err.contains("signature"),
        "{err}"
    );

    // An id the registry does not have, claimed over client 1's certificate: the aggregator
    // refuses it, because the certificate speaks only for client 1.
    let mut setup = deploy::client_setup(&out.join("client-1.toml"), false).unwrap();
    let data = federation(&scenario()).unwrap().client_data.swap_remove(1);
    setup.client = std::sync::Arc::new(spddl_client_trainer::client::Client::new(
        spddl_proto::ClientId(99),
        spddl_crypto::identity::SigningKey::generate(&mut spddl_crypto::Entropy::os()),
        data,
    ));
    let err = within(
        60,
        spddl_client_trainer::grpc::run_client(setup, std::future::pending()),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("client 1's certificate cannot speak as client 99"),
        "{err}"
    );

    // A certificate from another CA: the TLS handshake fails, nothing reaches the services.
    let other = tempfile::tempdir().unwrap();
    let other_out = init(other.path(), 30.0);
    let mut client = rounds_client(&out, &other_out);
    let status = client
        .get_round(pb::GetRoundRequest { client: 0 })
        .await
        .unwrap_err();
    // Refused at the transport (a TLS alert, or the connection closed after it under TLS 1.3),
    // not by a service: a service would answer, or refuse with PermissionDenied.
    let why = spddl_proto::transport::describe(&status);
    assert!(
        why.contains("transport error")
            && !matches!(
                status.code(),
                tonic::Code::Ok | tonic::Code::PermissionDenied
            ),
        "not refused by TLS: {why}"
    );
    stop.fire();
    let _ = within(60, agg).await;
}
