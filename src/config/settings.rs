//! `stats settings`: the configuration in memcached 1.6.18's order and
//! formats.

use super::*;

// ---------------------------------------------------------------------------
// stats settings
// ---------------------------------------------------------------------------

impl Config {
    /// `stats settings` lines in memcached 1.6.18's order (76 STAT lines, 77 with END):
    /// (name, value). Values use memcached's formats.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let yn = |b: bool| if b { "yes" } else { "no" }.to_string();
        let t = &self.tuning;
        let inter = self.listen_spec.clone();
        let threads_per_udp = match &inter {
            Some(s) if s.contains(',') => 1,
            _ => self.threads,
        };
        vec![
            ("maxbytes", self.memory_limit_bytes().to_string()),
            ("maxconns", self.max_connections.to_string()),
            ("tcpport", self.port.to_string()),
            ("udpport", self.udp_port.to_string()),
            ("inter", inter.unwrap_or_else(|| "NULL".into())),
            ("verbosity", self.verbosity.to_string()),
            ("oldest", "0".into()),
            (
                "evictions",
                if self.evictions { "on" } else { "off" }.into(),
            ),
            (
                "domain_socket",
                self.unix_socket
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "NULL".into()),
            ),
            ("umask", format!("{:o}", self.unix_mask)),
            ("shutdown_command", yn(self.shutdown_enabled)),
            ("growth_factor", format!("{:.2}", self.growth_factor)),
            ("chunk_size", self.chunk_size.to_string()),
            ("num_threads", self.threads.to_string()),
            ("num_threads_per_udp", threads_per_udp.to_string()),
            (
                "stat_key_prefix",
                self.detail_delimiter.unwrap_or(':').to_string(),
            ),
            ("detail_enabled", yn(self.detail_delimiter.is_some())),
            ("reqs_per_event", self.reqs_per_event.to_string()),
            ("cas_enabled", yn(self.cas_enabled)),
            ("tcp_backlog", self.backlog.to_string()),
            (
                "binding_protocol",
                match self.protocol {
                    BindingProtocol::Ascii => "ascii",
                    BindingProtocol::Auto => "auto-negotiate",
                }
                .into(),
            ),
            ("auth_enabled_sasl", "no".into()),
            ("auth_enabled_ascii", "no".into()),
            ("item_size_max", self.item_size_max.to_string()),
            ("maxconns_fast", yn(self.maxconns_fast)),
            ("hashpower_init", self.hashpower_init.to_string()),
            ("slab_reassign", yn(t.slab_reassign)),
            ("slab_automove", t.slab_automove.to_string()),
            (
                "slab_automove_ratio",
                format!("{:.2}", t.slab_automove_ratio),
            ),
            ("slab_automove_window", t.slab_automove_window.to_string()),
            ("slab_chunk_max", t.slab_chunk_max.to_string()),
            ("lru_crawler", yn(t.lru_crawler)),
            ("lru_crawler_sleep", t.lru_crawler_sleep.to_string()),
            ("lru_crawler_tocrawl", t.lru_crawler_tocrawl.to_string()),
            ("tail_repair_time", t.tail_repair_time.to_string()),
            ("flush_enabled", yn(self.flush_enabled)),
            ("dump_enabled", yn(self.dumping_enabled)),
            ("hash_algorithm", t.hash_algorithm.clone()),
            ("lru_maintainer_thread", yn(t.lru_maintainer)),
            ("lru_segmented", yn(t.lru_segmented)),
            ("hot_lru_pct", t.hot_lru_pct.to_string()),
            ("warm_lru_pct", t.warm_lru_pct.to_string()),
            ("hot_max_factor", format!("{:.2}", t.hot_max_factor)),
            ("warm_max_factor", format!("{:.2}", t.warm_max_factor)),
            ("temp_lru", yn(t.temp_lru)),
            ("temporary_ttl", t.temporary_ttl.to_string()),
            ("idle_timeout", self.idle_timeout.to_string()),
            ("watcher_logbuf_size", t.watcher_logbuf_size.to_string()),
            ("worker_logbuf_size", t.worker_logbuf_size.to_string()),
            ("read_buf_mem_limit", t.read_buf_mem_limit.to_string()),
            ("track_sizes", yn(t.track_sizes)),
            ("inline_ascii_response", "no".into()),
            // extstore is refused; memcached's defaults are reported.
            ("ext_item_size", "512".into()),
            ("ext_item_age", u32::MAX.to_string()),
            ("ext_low_ttl", "0".into()),
            ("ext_recache_rate", "2000".into()),
            ("ext_wbuf_size", (4u32 * 1024 * 1024).to_string()),
            ("ext_compact_under", "0".into()),
            ("ext_drop_under", "0".into()),
            ("ext_max_sleep", "1000000".into()),
            ("ext_max_frag", "0.80".into()),
            (
                "slab_automove_freeratio",
                format!("{:.3}", t.slab_automove_freeratio),
            ),
            ("ext_drop_unread", "no".into()),
            // TLS is refused; memcached's values with TLS off are reported.
            ("ssl_enabled", "no".into()),
            ("ssl_chain_cert", "(null)".into()),
            ("ssl_key", "(null)".into()),
            ("ssl_verify_mode", "0".into()),
            ("ssl_keyformat", "1".into()),
            ("ssl_ciphers", "NULL".into()),
            ("ssl_ca_cert", "NULL".into()),
            ("ssl_wbuf_size", "16384".into()),
            ("ssl_session_cache", "no".into()),
            ("ssl_kernel_tls", "no".into()),
            ("ssl_min_version", "tlsv1.2".into()),
            (
                "num_napi_ids",
                self.napi_ids
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "(null)".into()),
            ),
            (
                "memory_file",
                self.memory_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "(null)".into()),
            ),
        ]
    }
}
