//! The control replica as the ingress's router: hosts are the workloads'
//! `expose.http.host`, instances are dialed over their nodes' tunnel
//! links (so NAT-ed nodes serve too), with TLS to the node's key inside.

use stratus_control::Control;
use stratus_ingress::{Conn, Dialing, Route, Router};

/// Routes of the replicated state, dialed by this replica.
pub(crate) struct Routes(pub(crate) Control);

impl Router for Routes {
    fn route(&self, host: &str) -> Option<Route> {
        self.0
            .ingress_route(host)
            .map(|(port, instances)| Route { port, instances })
    }

    fn dial(&self, instance: String, port: u16) -> Dialing {
        let control = self.0.clone();
        Box::pin(async move {
            control
                .dial_instance(&instance, port)
                .await
                .map(|s| Box::new(s) as Conn)
                .map_err(|m| std::io::Error::new(std::io::ErrorKind::ConnectionRefused, m))
        })
    }
}
