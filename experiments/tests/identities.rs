//! Connection identity = protocol identity (DESIGN §6: a participant's certificate speaks
//! only for its own id). A member of the deployment with a valid certificate — client 0 —
//! claims another participant's id on every RPC that carries one, over real sockets with
//! mutual TLS: each call is refused with `PermissionDenied` naming both ids, and the server
//! logs it. Its own id still gets through.
//!
//! One test in this binary: its global log subscriber sees every server's lines.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use spddl_proto::wire::pb;
use tonic::Code;

fn address(out: &Path, file: &str) -> String {
    let text = std::fs::read_to_string(out.join(file)).unwrap();
    let value: toml::Value = toml::from_str(&text).unwrap();
    value["listen"].as_str().unwrap().to_string()
}

fn assert_impersonation_refused<T: std::fmt::Debug>(
    rpc: &str,
    result: Result<T, tonic::Status>,
    claimed: &str,
    log: &Log,
) {
    let s = result.expect_err(&format!("{rpc}: client 0 was let through as {claimed}"));
    assert_eq!(s.code(), Code::PermissionDenied, "{rpc}: {s:?}");
    let want = format!("{rpc}: client 0's certificate cannot speak as {claimed}");
    assert_eq!(s.message(), want, "{rpc}");
    // The server logged the refusal (its line reaches the global subscriber at once).
    let logged = format!("refused: {want}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !log.text().contains(&logged) {
        assert!(
            std::time::Instant::now() < deadline,
            "{rpc}: not logged: {logged:?}\n{}",
            log.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_certificate_speaks_only_for_its_own_id_on_every_rpc() {
    let log = Log::default();
    tracing::subscriber::set_global_default(log.subscriber()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 30.0);
    let stop = Stop::new();
    let _agg = aggregator(&out, &stop);
    let (_fogs, _holders) = start_fogs_and_holders(&out, &[0, 1], &[], &stop);
    let agg_addr = address(&out, "aggregator.toml");
    let fog_addr = address(&out, "fog-0.toml");
    let as_client0 = channel_as(&out, "client-0", &agg_addr);
    let mut rounds = pb::client_rounds_client::ClientRoundsClient::new(as_client0.clone());
    let mut aggregator = pb::aggregator_client::AggregatorClient::new(as_client0.clone());
    let mut holders = pb::key_holders_client::KeyHoldersClient::new(as_client0);
    let mut fog =
        pb::fog_worker_client::FogWorkerClient::new(channel_as(&out, "client-0", &fog_addr));

    // Its own id passes (the aggregator may still be opening the round: retry briefly).
    let own = within(30, async {
        loop {
            match rounds.get_round(pb::GetRoundRequest { client: 0 }).await {
                Ok(r) => break r.into_inner(),
                Err(e) if e.code() == Code::PermissionDenied => panic!("own id refused: {e:?}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    assert!(own.config.is_some());

    let r = rounds.get_round(pb::GetRoundRequest { client: 1 }).await;
    assert_impersonation_refused("GetRound", r, "client 1", &log);
    let r = aggregator
        .get_fog_round(pb::GetFogRoundRequest { fog: 0, pending: 0 })
        .await;
    assert_impersonation_refused("GetFogRound", r, "fog 0", &log);
    let r = aggregator
        .submit_aggregate(pb::SubmitAggregateRequest {
            aggregate: Some(pb::FogAggregate {
                fog: 1,
                ..Default::default()
            }),
        })
        .await;
    assert_impersonation_refused("SubmitAggregate", r, "fog 1", &log);
    let r = holders
        .get_decryption_request(pb::GetDecryptionRequestRequest { holder: 2 })
        .await;
    assert_impersonation_refused("GetDecryptionRequest", r, "key holder 2", &log);
    let r = holders
        .get_request_uploads(pb::GetRequestUploadsRequest {
            holder: 3,
            round: 0,
            offset: 0,
        })
        .await;
    assert_impersonation_refused("GetRequestUploads", r, "key holder 3", &log);
    let r = holders
        .submit_share(pb::SubmitShareRequest {
            share: Some(pb::ShareResponse {
                holder: 4,
                ..Default::default()
            }),
        })
        .await;
    assert_impersonation_refused("SubmitShare", r, "key holder 4", &log);
    let r = fog
        .submit_upload(pb::SubmitUploadRequest {
            upload: Some(pb::Upload {
                client: 5,
                ..Default::default()
            }),
        })
        .await;
    assert_impersonation_refused("SubmitUpload", r, "client 5", &log);
    // The signed uploads a fog holds are for the aggregator's audit only.
    let r = fog
        .get_uploads(pb::GetUploadsRequest {
            round: 0,
            clients: vec![0, 1, 2],
        })
        .await;
    assert_impersonation_refused("GetUploads", r, "aggregator", &log);
    stop.fire();
}
