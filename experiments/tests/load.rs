//! A fog worker taking uploads from many clients at once over loopback with mutual TLS: none
//! fails and the aggregator counts every one. (`spddl bench fog --clients 1000` measures the
//! throughput; nothing here is timed.)

#![allow(clippy::unwrap_used)]

use spddl_crypto::testing::test_key;
use spddl_experiments::load::fog_load;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_clients_upload_to_one_fog_at_once_and_all_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let report = fog_load(dir.path(), 200, test_key(2048, 3, 5, 4))
        .await
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.counted, 200, "{report:?}");
    assert!(report.ciphertexts_per_upload >= 1 && report.bytes_per_upload > 512);
}
