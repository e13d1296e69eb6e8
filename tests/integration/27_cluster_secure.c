/*
 * 27_cluster_secure.c - the NATS connection's credentials and TLS (issue
 * 14): NATS URL conventions (nats://USER:PASS@HOST:PORT, tls://) against a
 * real nats-server that requires them. Credentials never reach the log; a
 * wrong password or an untrusted server certificate keeps the node apart
 * (serving its local clients, /healthz degraded) instead of joining.
 * Certificates come from the TLS suites' harness (13_tls_harness.c).
 */
#include "harness.h"
#include "nats_harness.h"

#include <criterion/criterion.h>
#include <string.h>

TestSuite(cluster_secure, .init = h_init, .fini = h_fini, .timeout = 90);

static struct h_broker *node_at(const char *url, const char *name, const char *ca)
{
    const char *args[] = {"--listen", "ws://127.0.0.1:0/ws", ca ? "--cluster-tls-ca" : NULL, ca,
                          NULL};
    return h_cluster_node_ex(url, name, 2, args, NULL);
}

static const char *health(struct h_broker *b)
{
    return h_http_get(h_listener_port(b, "ws"), "/healthz");
}

static void round_trip(struct h_broker *from, struct h_broker *to, const char *tag)
{
    const char *t = h_dest("topic", tag);
    struct h_conn *sub = h_client(to, "1.2");
    h_subscribe(sub, t, "s", NULL, "");
    struct h_conn *pub = h_client(from, "1.2");
    h_publish(pub, t, "across", true);
    cr_assert_str_eq(h_expect(sub, "MESSAGE", 5000)->body, "across");
}

Test(cluster_secure, credentials_in_the_url)
{
    static const char *const auth[] = {"--user", "stp", "--pass", "s3cret-pw", NULL};
    struct h_nats *n = h_nats_start_ex(false, auth);
    const char *url = h_fmt("nats://stp:s3cret-pw@127.0.0.1:%d", h_nats_port(n));
    struct h_broker *a = node_at(url, "a", NULL), *b = node_at(url, "b", NULL);
    cr_assert(h_broker_log_wait(a, "cluster: connected to NATS at", 10000), "%s", h_broker_log(a));
    cr_assert(h_broker_log_wait(b, "cluster: connected to NATS at", 10000), "%s", h_broker_log(b));
    round_trip(a, b, "creds");
    cr_assert(strstr(h_broker_log(a), "s3cret-pw") == NULL, "the password is in the log:\n%s",
              h_broker_log(a));
    /* The wrong password: the node stays apart and says so. */
    const char *bad = h_fmt("nats://stp:wrong@127.0.0.1:%d", h_nats_port(n));
    struct h_broker *c = node_at(bad, "c", NULL);
    cr_assert(!h_broker_log_wait(c, "cluster: connected to NATS", 1500), "%s", h_broker_log(c));
    cr_assert(strstr(health(c), "\"cluster\":\"disconnected\""), "%s", health(c));
    h_bystander_topic_ok(c); /* local clients are served */
    cr_assert(strstr(h_broker_log(c), "wrong") == NULL, "%s", h_broker_log(c));
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
    h_broker_stop_ok(c);
}

Test(cluster_secure, tls_with_the_servers_ca)
{
    static const char *tls[8];
    tls[0] = "--tls";
    tls[1] = "--tlscert";
    tls[2] = h_tls_path("srv_ec.crt");
    tls[3] = "--tlskey";
    tls[4] = h_tls_path("srv_ec.key");
    tls[5] = NULL;
    struct h_nats *n = h_nats_start_ex(false, tls);
    const char *url = h_fmt("tls://127.0.0.1:%d", h_nats_port(n));
    const char *ca = h_tls_path("ca1.crt");
    struct h_broker *a = node_at(url, "a", ca), *b = node_at(url, "b", ca);
    cr_assert(h_broker_log_wait(a, "cluster: connected to NATS at tls://127.0.0.1", 10000), "%s",
              h_broker_log(a));
    cr_assert(h_broker_log_wait(b, "cluster: connected to NATS at", 10000), "%s", h_broker_log(b));
    round_trip(b, a, "tls");
    /* A CA that did not sign the server's certificate: no connection. */
    struct h_broker *c = node_at(url, "c", h_tls_path("ca2.crt"));
    cr_assert(!h_broker_log_wait(c, "cluster: connected to NATS", 1500), "%s", h_broker_log(c));
    cr_assert(strstr(health(c), "\"status\":\"degraded\""), "%s", health(c));
    h_bystander_topic_ok(c);
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
    h_broker_stop_ok(c);
}

Test(cluster_secure, a_missing_ca_file_is_a_one_line_error)
{
    char *out = NULL;
    int rc = h_run((const char *const[]){h_bin(), "--cluster", "tls://127.0.0.1:1",
                                         "--cluster-tls-ca", "/nonexistent/ca.pem", NULL},
                   NULL, 5000, &out, NULL);
    cr_assert_eq(rc, 2, "%s", out ? out : "");
}
