/* Unit tests of stampede-bench's command line: presets, overrides, URLs and
 * the one-line errors for bad options. */
#include "options.h"
#include "transport.h"

#include "stampede/error.h"

#include <criterion/criterion.h>
#include <string.h>

static int parse(struct stp_bench_config *cfg, char *err, const char *const *args)
{
    char *argv[32] = {"stampede-bench"};
    int argc = 1;
    while (args[argc - 1])
        argv[argc] = (char *)args[argc - 1], argc++;
    stp_bench_config_defaults(cfg);
    return stp_bench_parse_args(cfg, argc, argv, err, 512);
}

Test(bench_options, defaults)
{
    struct stp_bench_config cfg;
    char err[512];
    const char *args[] = {NULL};
    cr_assert_eq(parse(&cfg, err, args), 0);
    cr_assert_str_eq(cfg.url.host, "127.0.0.1");
    cr_assert_eq(cfg.url.port, 61613);
    cr_assert_str_eq(cfg.url.vhost, "/");
    cr_assert_eq(cfg.producers, 1);
    cr_assert(cfg.topic);
    cr_assert_eq(cfg.rate, 0);
}

Test(bench_options, preset_then_overrides)
{
    struct stp_bench_config cfg;
    char err[512];
    const char *args[] = {"--consumers", "3", "--preset", "work-queue", "--size=10", NULL};
    cr_assert_eq(parse(&cfg, err, args), 0, "%s", err);
    cr_assert_eq(cfg.producers, 4);
    cr_assert_eq(cfg.consumers, 3, "an explicit option beats the preset wherever it is");
    cr_assert_eq(cfg.destinations, 1);
    cr_assert(!cfg.topic);
    cr_assert_eq(cfg.ack, STP_BENCH_ACK_CLIENT_INDIVIDUAL);
    cr_assert_eq(cfg.prefetch, 10);
    cr_assert_eq(cfg.size, 10);
    cr_assert_str_eq(cfg.preset, "work-queue");
}

Test(bench_options, every_preset_parses)
{
    const char *names[] = {"fanout",  "fanout-100", "queue-pairs", "work-queue",
                           "durable", "latency",    "connections"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct stp_bench_config cfg;
        char err[512];
        const char *args[] = {"--preset", names[i], NULL};
        cr_assert_eq(parse(&cfg, err, args), 0, "%s: %s", names[i], err);
        cr_assert(cfg.producers + cfg.consumers > 0);
    }
}

Test(bench_options, durations_urls_and_flags)
{
    struct stp_bench_config cfg;
    char err[512];
    const char *args[] = {"--url",      "stomp://localhost:1234/vh",
                          "--duration", "250ms",
                          "--warmup=2", "--receipts=5",
                          "--queue",    "--ack",
                          "client",     "--rate",
                          "1000",       NULL};
    cr_assert_eq(parse(&cfg, err, args), 0, "%s", err);
    cr_assert_str_eq(cfg.url.host, "localhost");
    cr_assert_eq(cfg.url.port, 1234);
    cr_assert_str_eq(cfg.url.vhost, "vh");
    cr_assert_eq(cfg.duration_ns, 250000000);
    cr_assert_eq(cfg.warmup_ns, 2000000000);
    cr_assert_eq(cfg.receipts, 5);
    cr_assert(!cfg.topic);
    cr_assert_eq(cfg.ack, STP_BENCH_ACK_CLIENT);
    cr_assert_eq(cfg.rate, 1000);
    const char *ver[] = {"--stomp-version", "1.1", NULL};
    cr_assert_eq(parse(&cfg, err, ver), 0, "%s", err);
    cr_assert_str_eq(cfg.accept_version, "1.1");
    const char *tick[] = {"--tick", "1ms", NULL};
    cr_assert_eq(parse(&cfg, err, tick), 0, "%s", err);
    cr_assert_eq(cfg.tick_ns, 1000000);
    const char *flag[] = {"--receipts", NULL};
    cr_assert_eq(parse(&cfg, err, flag), 0, "%s", err);
    cr_assert_eq(cfg.receipts, 1, "--receipts alone: every SEND");
}

Test(bench_options, dedup_id)
{
    struct stp_bench_config cfg;
    char err[512];
    const char *none[] = {NULL};
    cr_assert_eq(parse(&cfg, err, none), 0, "%s", err);
    cr_assert_eq(cfg.dedup, 0, "no dedup-id by default");
    const char *unique[] = {"--dedup-id", NULL};
    cr_assert_eq(parse(&cfg, err, unique), 0, "%s", err);
    cr_assert_eq(cfg.dedup, 1, "--dedup-id alone: a unique id on every SEND");
    const char *rep[] = {"--dedup-id=4", NULL};
    cr_assert_eq(parse(&cfg, err, rep), 0, "%s", err);
    cr_assert_eq(cfg.dedup, 4);
    const char *zero[] = {"--dedup-id=0", NULL};
    cr_assert_neq(parse(&cfg, err, zero), 0);
    cr_assert(strstr(err, "--dedup-id"), "%s", err);
}

Test(bench_options, persistent_flag)
{
    struct stp_bench_config cfg;
    char err[512];
    const char *none[] = {NULL};
    cr_assert_eq(parse(&cfg, err, none), 0, "%s", err);
    cr_assert(!cfg.persistent, "SENDs are not persistent by default");
    const char *args[] = {"--queue", "--persistent", "--receipts=10", NULL};
    cr_assert_eq(parse(&cfg, err, args), 0, "%s", err);
    cr_assert(cfg.persistent);
    cr_assert_eq(cfg.receipts, 10);
    cr_assert(!cfg.topic);
    cr_assert_eq(cfg.window, 5000, "--persistent alone leaves the window alone");
    cr_assert_not_null(strstr(stp_bench_usage(), "--persistent"), "--help lists it");
}

/* Issue 13: selectors split a queue's traffic among its consumers. */
Test(bench_options, selector_split_flag)
{
    struct stp_bench_config cfg;
    char err[512];
    const char *none[] = {NULL};
    cr_assert_eq(parse(&cfg, err, none), 0);
    cr_assert(!cfg.selector_split);
    const char *args[] = {"--queue", "--consumers", "2", "--selector-split", NULL};
    cr_assert_eq(parse(&cfg, err, args), 0, "%s", err);
    cr_assert(cfg.selector_split);
    cr_assert_not_null(strstr(stp_bench_usage(), "--selector-split"), "--help lists it");
    cr_assert_neq(parse(&cfg, err, (const char *[]){"--selector-split=yes", NULL}), 0);
}

Test(bench_options, durable_preset)
{
    struct stp_bench_config cfg;
    char err[512];
    const char *args[] = {"--preset", "durable", NULL};
    cr_assert_eq(parse(&cfg, err, args), 0, "%s", err);
    cr_assert_str_eq(cfg.preset, "durable");
    cr_assert_eq(cfg.producers, 10);
    cr_assert_eq(cfg.consumers, 10);
    cr_assert_eq(cfg.destinations, 10, "queue pairs: one queue per producer and consumer");
    cr_assert(!cfg.topic);
    cr_assert(cfg.persistent);
    cr_assert_eq(cfg.receipts, 1, "a receipt for every SEND");
    cr_assert_eq(cfg.ack, STP_BENCH_ACK_CLIENT_INDIVIDUAL);
    cr_assert_eq(cfg.prefetch, 100);
    cr_assert_eq(cfg.window, 200);
    cr_assert_eq(cfg.rate, 0);
    cr_assert_not_null(strstr(stp_bench_usage(), "durable"), "--help names the preset");
}

Test(bench_options, durable_preset_then_overrides)
{
    struct stp_bench_config cfg;
    char err[512];
    /* options before and after the preset both beat it */
    const char *args[] = {"--receipts=50",
                          "--preset=durable",
                          "--ack",
                          "auto",
                          "--window",
                          "0",
                          "--prefetch",
                          "0",
                          NULL};
    cr_assert_eq(parse(&cfg, err, args), 0, "%s", err);
    cr_assert(cfg.persistent, "what is not overridden stays");
    cr_assert_eq(cfg.receipts, 50);
    cr_assert_eq(cfg.ack, STP_BENCH_ACK_AUTO);
    cr_assert_eq(cfg.window, 0);
    cr_assert_eq(cfg.prefetch, 0);
    cr_assert_eq(cfg.producers, 10);
    /* the other presets do not make SENDs persistent */
    const char *qp[] = {"--preset", "queue-pairs", NULL};
    cr_assert_eq(parse(&cfg, err, qp), 0, "%s", err);
    cr_assert(!cfg.persistent);
    cr_assert_eq(cfg.receipts, 0);
}

static void expect_error(const char *const *args, const char *needle)
{
    struct stp_bench_config cfg;
    char err[512] = "";
    cr_assert_eq(parse(&cfg, err, args), STP_EINVAL, "accepted %s", args[0]);
    cr_assert(strstr(err, needle), "error '%s' should mention '%s'", err, needle);
    cr_assert_null(strchr(err, '\n'), "one line: '%s'", err);
}

Test(bench_options, bad_options_give_one_line_errors)
{
    expect_error((const char *[]){"--producers", "-1", NULL}, "--producers");
    expect_error((const char *[]){"--producers", "12x", NULL}, "--producers");
    expect_error((const char *[]){"--ack", "sometimes", NULL}, "--ack");
    expect_error((const char *[]){"--duration", "soon", NULL}, "--duration");
    expect_error((const char *[]){"--duration", "0", NULL}, "--duration");
    expect_error((const char *[]){"--preset", "nope", NULL}, "nope");
    expect_error((const char *[]){"--frobnicate", NULL}, "--frobnicate");
    expect_error((const char *[]){"--rate", NULL}, "--rate");
    expect_error((const char *[]){"--topic=1", NULL}, "--topic");
    expect_error((const char *[]){"stray", NULL}, "stray");
    expect_error((const char *[]){"--url", "http://x:1", NULL}, "scheme");
    expect_error((const char *[]){"--url", "stomp://h:99999", NULL}, "port");
    expect_error((const char *[]){"--url", "stomp://:5", NULL}, "host");
    expect_error((const char *[]){"--destinations", "0", NULL}, "--destinations");
    expect_error((const char *[]){"--tick", "5us", NULL}, "--tick");
    expect_error((const char *[]){"--stomp-version", "2.0", NULL}, "--stomp-version");
    expect_error((const char *[]){"--tick", "2s", NULL}, "--tick");
    expect_error((const char *[]){"--persistent=true", NULL}, "--persistent");
    expect_error((const char *[]){"--persistent", "yes", NULL}, "yes");
    expect_error((const char *[]){"--preset", "durables", NULL}, "durable,");
}

Test(bench_options, every_transport_is_built)
{
    const char *schemes[] = {"stomp", "stomp+ssl", "ws", "wss"};
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        const struct stp_bench_transport *t =
            stp_bench_transport_find(schemes[i], strlen(schemes[i]));
        cr_assert_not_null(t, "%s", schemes[i]);
        cr_assert_not_null(t->ops, "%s", schemes[i]);
    }
    const struct stp_bench_transport *ws = stp_bench_transport_find("ws", 2);
    cr_assert(ws->websocket && !ws->tls);
    cr_assert_eq(ws->default_port, 15674);
    cr_assert(stp_bench_transport_find("wss", 3)->tls);
    cr_assert_null(stp_bench_transport_find("gopher", 6));
    cr_assert_null(stp_bench_transport_find("st", 2), "no prefix matches");
}

Test(bench_options, websocket_urls_take_an_http_path)
{
    struct stp_bench_config cfg;
    char err[512];
    const char *a1[] = {"--url", "ws://127.0.0.1:15674/stomp", NULL};
    cr_assert_eq(parse(&cfg, err, a1), 0, "%s", err);
    cr_assert_str_eq(cfg.url.path, "/stomp");
    cr_assert_str_eq(cfg.url.vhost, "/", "the path is not a virtual host for ws://");
    const char *a2[] = {"--url", "wss://example:9", "--tls-ca", "/ca.pem", NULL};
    cr_assert_eq(parse(&cfg, err, a2), 0, "%s", err);
    cr_assert_str_eq(cfg.url.path, "/ws");
    cr_assert_eq(cfg.url.port, 9);
    cr_assert_str_eq(cfg.tls_ca, "/ca.pem");
    expect_error((const char *[]){"--url", "stomp://h:1", "--tls-ca", "/ca.pem", NULL}, "--tls-ca");
}

Test(bench_options, sub_url_defaults_to_url)
{
    struct stp_bench_config cfg;
    char err[512];
    const char *args[] = {"--url", "stomp://10.0.0.1:7000/vh", NULL};
    cr_assert_eq(parse(&cfg, err, args), 0, "%s", err);
    cr_assert_str_eq(cfg.sub_url_text, "", "no --sub-url given");
    cr_assert_eq(stp_bench_sub_url(&cfg), &cfg.url, "subscribers dial --url by default");
}

Test(bench_options, sub_url_is_parsed_like_url)
{
    struct stp_bench_config cfg;
    char err[512];
    const char *args[] = {"--url",     "stomp://node1:61613",
                          "--sub-url", "ws://node2:15674/stomp",
                          "--tls-ca",  "/ca.pem",
                          NULL};
    /* --tls-ca needs a TLS URL: neither is one */
    cr_assert_eq(parse(&cfg, err, args), STP_EINVAL);
    cr_assert(strstr(err, "--tls-ca"), "%s", err);
    const char *a2[] = {
        "--url", "stomp://node1:61613", "--sub-url=wss://node2:9/stomp", "--tls-ca", "/ca.pem",
        NULL};
    cr_assert_eq(parse(&cfg, err, a2), 0, "%s", err);
    cr_assert_str_eq(cfg.url.host, "node1");
    cr_assert_eq(cfg.url.port, 61613);
    cr_assert_str_eq(cfg.sub_url_text, "wss://node2:9/stomp");
    const struct stp_bench_url *s = stp_bench_sub_url(&cfg);
    cr_assert_eq(s, &cfg.sub_url);
    cr_assert_str_eq(s->host, "node2");
    cr_assert_eq(s->port, 9);
    cr_assert_str_eq(s->path, "/stomp");
    cr_assert(s->transport->tls && s->transport->websocket);
    const char *a3[] = {"--sub-url", "stomp://b:2/vhost", "--url", "stomp://a:1", NULL};
    cr_assert_eq(parse(&cfg, err, a3), 0, "%s", err);
    cr_assert_str_eq(stp_bench_sub_url(&cfg)->vhost, "vhost");
    cr_assert_eq(stp_bench_sub_url(&cfg)->port, 2);
    cr_assert_eq(cfg.url.port, 1, "order does not matter");
}

Test(bench_options, bad_sub_url_errors_name_the_flag)
{
    expect_error((const char *[]){"--sub-url", "http://x:1", NULL}, "--sub-url: unknown scheme");
    expect_error((const char *[]){"--sub-url", "stomp://h:99999", NULL}, "--sub-url: bad port");
    expect_error((const char *[]){"--sub-url", "stomp://h:0", NULL}, "--sub-url: bad port");
    expect_error((const char *[]){"--sub-url", "stomp://:5", NULL}, "--sub-url: missing");
    expect_error((const char *[]){"--sub-url", "node2:61613", NULL}, "--sub-url: expected");
    expect_error((const char *[]){"--sub-url", "stomp://[::1]:5", NULL}, "--sub-url: IPv6");
    expect_error((const char *[]){"--sub-url", NULL}, "--sub-url needs a value");
    char longurl[700];
    memset(longurl, 'a', sizeof(longurl) - 1);
    longurl[sizeof(longurl) - 1] = '\0';
    memcpy(longurl, "stomp://", 8);
    expect_error((const char *[]){"--sub-url", longurl, NULL}, "--sub-url: value too long");
    /* the --url errors still name --url */
    expect_error((const char *[]){"--url", "http://x:1", NULL}, "--url: unknown scheme");
    /* a refused --sub-url leaves none behind */
    struct stp_bench_config cfg;
    char err[512];
    cr_assert_eq(parse(&cfg, err, (const char *[]){"--sub-url", "stomp://h:99999", NULL}),
                 STP_EINVAL);
    cr_assert_str_eq(cfg.sub_url_text, "");
}

Test(bench_options, help_documents_sub_url)
{
    cr_assert(strstr(stp_bench_usage(), "--sub-url X\n"), "%s", stp_bench_usage());
}

Test(bench_options, idle_patterns)
{
    struct stp_bench_config cfg;
    char err[512];
    const char *args[] = {"--preset", "fanout", "--idle-patterns", "10000", NULL};
    cr_assert_eq(parse(&cfg, err, args), 0, "%s", err);
    cr_assert_eq(cfg.idle_patterns, 10000);
    cr_assert_eq(cfg.consumers, 10, "the preset's load is unchanged");
    const char *bad[] = {"--idle-patterns", "-1", NULL};
    cr_assert_eq(parse(&cfg, err, bad), STP_EINVAL);
    cr_assert(strstr(err, "--idle-patterns") != NULL, "%s", err);
}
