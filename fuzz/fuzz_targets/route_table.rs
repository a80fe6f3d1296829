//! The route table compiler on any bytes as they come over RDS: a table,
//! or a compile error the proxy NACKs, never a panic. The cluster index
//! names a few clusters so that routes link; a compiled table is also
//! relinked, as a cluster update does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_proxy::config::route::RouteTable;
use weft_proxy::config::wire::Wire;
use weft_proxy::config::{ClusterId, ClusterIndex};
use weft_proxy::names::Interner;

fuzz_target!(|data: &[u8]| {
    let mut index = ClusterIndex::new();
    for (i, name) in ["a", "b", "outbound|80||a.default.svc.cluster.local"].into_iter().enumerate() {
        index.insert(name.into(), ClusterId(i as u32));
    }
    let names = Interner::default();
    if let Ok(table) = RouteTable::compile_wire(&Wire::new(data.to_vec()), &index, &names) {
        let _ = table.relinked(&ClusterIndex::new());
        let _ = table.host("a");
    }
});
