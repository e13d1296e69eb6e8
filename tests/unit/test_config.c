/* Unit tests of the configuration (src/config.c): defaults, every flag and its
 * STAMPEDE_* twin, precedence, repeatable flags and lists, units, listen URLs,
 * --help/--version, and every error path (one line on stderr, result 2). */
#include "stampede/config.h"
#include "stampede/error.h"
#include "stampede/log.h"

#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXARGS 64

/* Parses "stampede ARGS..." (NULL-terminated) with the environment env. */
static enum stp_config_result parse_env(struct stp_config *cfg, char **env, ...)
{
    static char *argv[MAXARGS];
    int argc = 0;
    va_list ap;
    argv[argc++] = "stampede";
    va_start(ap, env);
    for (char *a; (a = va_arg(ap, char *));) {
        cr_assert_lt(argc, MAXARGS - 1);
        argv[argc++] = a;
    }
    va_end(ap);
    argv[argc] = NULL;
    return stp_config_parse(cfg, argc, argv, env);
}

#define parse(cfg, ...) parse_env(cfg, NULL, __VA_ARGS__, NULL)
#define parse_none(cfg) parse_env(cfg, NULL, NULL)

/* Everything written to the redirected stream fd so far, after closing it. */
static void drain(FILE *stream, int fd, FILE *redirected, char *buf, size_t n)
{
    fflush(stream);
    close(fd);
    size_t got = fread(buf, 1, n - 1, redirected);
    buf[got] = '\0';
}

static void redirect_err(void)
{
    cr_redirect_stderr();
}

static void redirect_out(void)
{
    cr_redirect_stdout();
}

/* Asserts stderr holds exactly one line, "stampede: ...", containing want. */
static void assert_one_error_line(const char *want)
{
    char buf[4096];
    drain(stderr, STDERR_FILENO, cr_get_redirected_stderr(), buf, sizeof(buf));
    size_t len = strlen(buf);
    cr_assert_gt(len, 0, "nothing on stderr");
    cr_assert_eq(buf[len - 1], '\n', "not a whole line: %s", buf);
    cr_assert_eq(strchr(buf, '\n'), buf + len - 1, "more than one line: %s", buf);
    cr_assert_eq(strncmp(buf, "stampede: ", 10), 0, "%s", buf);
    cr_assert_not_null(strstr(buf, want), "'%s' not in: %s", want, buf);
}

static void assert_error_line_is(const char *want)
{
    char buf[4096];
    drain(stderr, STDERR_FILENO, cr_get_redirected_stderr(), buf, sizeof(buf));
    cr_assert_str_eq(buf, want);
}

static void assert_zeroed(const struct stp_config *cfg)
{
    static const struct stp_config zero;
    cr_assert_eq(memcmp(cfg, &zero, sizeof(zero)), 0, "cfg not cleared after an error");
}

/* Writes a small readable file for the TLS flags; returns its path. */
static const char *temp_file(char *path)
{
    strcpy(path, "/tmp/stp-config-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "x\n", 2), 2);
    close(fd);
    return path;
}

/* ---- defaults ---- */

Test(config, defaults)
{
    struct stp_config cfg;
    cr_assert_eq(parse_none(&cfg), STP_CONFIG_RUN);
    /* STOMP on 61613 and Web-STOMP on 15674/ws, RabbitMQ's ports and path. */
    cr_assert_eq(cfg.nlisten, 2);
    cr_assert_eq(cfg.listen[0].scheme, STP_SCHEME_STOMP);
    cr_assert_str_eq(cfg.listen[0].host, "0.0.0.0");
    cr_assert_eq(cfg.listen[0].port, 61613);
    cr_assert_eq(cfg.listen[1].scheme, STP_SCHEME_WS);
    cr_assert_str_eq(cfg.listen[1].host, "0.0.0.0");
    cr_assert_eq(cfg.listen[1].port, 15674);
    cr_assert_str_eq(cfg.listen[1].path, "/ws");
    unsigned cpus = stp_available_cpus();
    cr_assert_eq(cfg.workers, cpus > 1024 ? 1024 : cpus);
    cr_assert_geq(cfg.workers, 1);
    cr_assert_null(cfg.users);
    cr_assert_eq(cfg.nusers, 0);
    cr_assert_eq(cfg.max_frame_size, 4u << 20);
    cr_assert_eq(cfg.max_pre_connect, 64u << 10);
    cr_assert_eq(cfg.max_headers, 1000);
    cr_assert_eq(cfg.max_header_length, 64u << 10);
    cr_assert_eq(cfg.login_timeout_ms, 10000);
    cr_assert_eq(cfg.heartbeat_min_ms, 100);
    cr_assert_eq(cfg.heartbeat_max_ms, 60000);
    cr_assert_eq(cfg.queue_max_messages, 1000000);
    cr_assert_eq(cfg.queue_max_bytes, (size_t)1 << 30);
    cr_assert_eq(cfg.max_pending_output, (size_t)16 << 20);
    cr_assert_eq(cfg.memory_budget, (size_t)4 << 30);
    cr_assert_null(cfg.ws_allowed_origins);
    cr_assert_eq(cfg.nws_allowed_origins, 0);
    cr_assert_eq(cfg.ws_frame_binary, false);
    cr_assert_null(cfg.tls_cert);
    cr_assert_null(cfg.tls_key);
    cr_assert_null(cfg.tls_key_password_file);
    cr_assert_null(cfg.tls_ca);
    cr_assert_null(cfg.tls_ciphers);
    cr_assert_eq(cfg.tls_verify_client, 0);
    cr_assert_eq(cfg.log_level, STP_LOG_INFO);
    stp_config_free(&cfg);
}

/* ---- every flag, both forms ---- */

static void assert_all_set(const struct stp_config *cfg, const char *file)
{
    cr_assert_eq(cfg->nlisten, 2);
    cr_assert_eq(cfg->listen[0].scheme, STP_SCHEME_STOMP_SSL);
    cr_assert_str_eq(cfg->listen[0].host, "127.0.0.1");
    cr_assert_eq(cfg->listen[0].port, 7000);
    cr_assert_eq(cfg->listen[1].scheme, STP_SCHEME_WSS);
    cr_assert_str_eq(cfg->listen[1].host, "::1");
    cr_assert_str_eq(cfg->listen[1].path, "/stomp");
    cr_assert_eq(cfg->workers, 3);
    cr_assert_eq(cfg->nusers, 1);
    cr_assert_str_eq(cfg->users[0].login, "guest");
    cr_assert_str_eq(cfg->users[0].passcode, "pa:ss");
    cr_assert_eq(cfg->max_frame_size, 2 << 20);
    cr_assert_eq(cfg->max_headers, 50);
    cr_assert_eq(cfg->max_header_length, 8192);
    cr_assert_eq(cfg->login_timeout_ms, 2500);
    cr_assert_eq(cfg->heartbeat_min_ms, 1000);
    cr_assert_eq(cfg->heartbeat_max_ms, 120000);
    cr_assert_eq(cfg->queue_max_messages, 500);
    cr_assert_eq(cfg->queue_max_bytes, 1 << 20);
    cr_assert_eq(cfg->max_pending_output, 65536);
    cr_assert_eq(cfg->memory_budget, (size_t)2 << 30);
    cr_assert_eq(cfg->nws_allowed_origins, 1);
    cr_assert_str_eq(cfg->ws_allowed_origins[0], "https://example.com");
    cr_assert_eq(cfg->ws_frame_binary, true);
    cr_assert_str_eq(cfg->tls_cert, file);
    cr_assert_str_eq(cfg->tls_key, file);
    cr_assert_str_eq(cfg->tls_key_password_file, file);
    cr_assert_str_eq(cfg->tls_ca, file);
    cr_assert_eq(cfg->tls_verify_client, 2);
    cr_assert_str_eq(cfg->tls_ciphers, "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256");
    cr_assert_eq(cfg->log_level, STP_LOG_WARN);
}

Test(config, every_flag_separate_value)
{
    char f[64];
    temp_file(f);
    struct stp_config cfg;
    cr_assert_eq(parse(&cfg, "--listen", "stomp+ssl://127.0.0.1:7000", "--listen",
                       "wss://[::1]:7001/stomp", "--workers", "3", "--user", "guest:pa:ss",
                       "--max-frame-size", "2MiB", "--max-headers", "50", "--max-header-length",
                       "8K", "--login-timeout", "2500", "--heartbeat-min", "1s", "--heartbeat-max",
                       "2m", "--queue-max-messages", "500", "--queue-max-bytes", "1M",
                       "--max-pending-output", "65536", "--memory-budget", "2GiB",
                       "--ws-allowed-origin", "https://example.com", "--ws-frame", "binary",
                       "--tls-cert", f, "--tls-key", f, "--tls-key-password-file", f, "--tls-ca", f,
                       "--tls-verify-client", "required", "--tls-ciphers",
                       "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256", "--log-level", "warn"),
                 STP_CONFIG_RUN);
    assert_all_set(&cfg, f);
    stp_config_free(&cfg);
    unlink(f);
}

Test(config, every_flag_with_equals)
{
    char f[64], cert[128], key[128], pw[128], ca[128];
    temp_file(f);
    snprintf(cert, sizeof(cert), "--tls-cert=%s", f);
    snprintf(key, sizeof(key), "--tls-key=%s", f);
    snprintf(pw, sizeof(pw), "--tls-key-password-file=%s", f);
    snprintf(ca, sizeof(ca), "--tls-ca=%s", f);
    struct stp_config cfg;
    cr_assert_eq(parse(&cfg, "--listen=stomp+ssl://127.0.0.1:7000",
                       "--listen=wss://[::1]:7001/stomp", "--workers=3", "--user=guest:pa:ss",
                       "--max-frame-size=2MiB", "--max-headers=50", "--max-header-length=8K",
                       "--login-timeout=2500", "--heartbeat-min=1s", "--heartbeat-max=2m",
                       "--queue-max-messages=500", "--queue-max-bytes=1M",
                       "--max-pending-output=65536", "--memory-budget=2GiB",
                       "--ws-allowed-origin=https://example.com", "--ws-frame=binary", cert, key,
                       pw, ca, "--tls-verify-client=required",
                       "--tls-ciphers=TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256", "--log-level=warn"),
                 STP_CONFIG_RUN);
    assert_all_set(&cfg, f);
    stp_config_free(&cfg);
    unlink(f);
}

Test(config, every_environment_twin)
{
    char f[64], cert[128], key[128], pw[128], ca[128];
    temp_file(f);
    snprintf(cert, sizeof(cert), "STAMPEDE_TLS_CERT=%s", f);
    snprintf(key, sizeof(key), "STAMPEDE_TLS_KEY=%s", f);
    snprintf(pw, sizeof(pw), "STAMPEDE_TLS_KEY_PASSWORD_FILE=%s", f);
    snprintf(ca, sizeof(ca), "STAMPEDE_TLS_CA=%s", f);
    char *env[] = {"HOME=/root",
                   "STAMPEDE_LISTEN=stomp+ssl://127.0.0.1:7000,wss://[::1]:7001/stomp",
                   "STAMPEDE_WORKERS=3",
                   "STAMPEDE_USER=guest:pa:ss",
                   "STAMPEDE_MAX_FRAME_SIZE=2MiB",
                   "STAMPEDE_MAX_HEADERS=50",
                   "STAMPEDE_MAX_HEADER_LENGTH=8K",
                   "STAMPEDE_LOGIN_TIMEOUT=2500",
                   "STAMPEDE_HEARTBEAT_MIN=1s",
                   "STAMPEDE_HEARTBEAT_MAX=2m",
                   "STAMPEDE_QUEUE_MAX_MESSAGES=500",
                   "STAMPEDE_QUEUE_MAX_BYTES=1M",
                   "STAMPEDE_MAX_PENDING_OUTPUT=65536",
                   "STAMPEDE_MEMORY_BUDGET=2GiB",
                   "STAMPEDE_WS_ALLOWED_ORIGIN=https://example.com",
                   "STAMPEDE_WS_FRAME=binary",
                   cert,
                   key,
                   pw,
                   ca,
                   "STAMPEDE_TLS_VERIFY_CLIENT=required",
                   "STAMPEDE_TLS_CIPHERS=TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256",
                   "STAMPEDE_LOG_LEVEL=warn",
                   NULL};
    struct stp_config cfg;
    cr_assert_eq(parse_env(&cfg, env, NULL), STP_CONFIG_RUN);
    assert_all_set(&cfg, f);
    stp_config_free(&cfg);
    unlink(f);
}

/* ---- precedence and lists ---- */

Test(config, flag_beats_variable)
{
    char *env[] = {"STAMPEDE_WORKERS=7", "STAMPEDE_MAX_HEADERS=9", "STAMPEDE_LOG_LEVEL=error",
                   NULL};
    struct stp_config cfg;
    cr_assert_eq(parse_env(&cfg, env, "--workers", "2", "--log-level=debug", NULL), STP_CONFIG_RUN);
    cr_assert_eq(cfg.workers, 2);
    cr_assert_eq(cfg.log_level, STP_LOG_DEBUG);
    cr_assert_eq(cfg.max_headers, 9, "a variable without its flag still applies");
    stp_config_free(&cfg);
}

Test(config, bad_variable_under_a_flag_is_ignored)
{
    char *env[] = {"STAMPEDE_WORKERS=abc", NULL};
    struct stp_config cfg;
    cr_assert_eq(parse_env(&cfg, env, "--workers", "2", NULL), STP_CONFIG_RUN);
    cr_assert_eq(cfg.workers, 2);
    stp_config_free(&cfg);
}

Test(config, empty_variable_counts_as_unset)
{
    char *env[] = {"STAMPEDE_WORKERS=", "STAMPEDE_LISTEN=", NULL};
    struct stp_config cfg;
    cr_assert_eq(parse_env(&cfg, env, NULL), STP_CONFIG_RUN);
    cr_assert_eq(cfg.nlisten, 2);
    cr_assert_eq(cfg.listen[0].port, 61613);
    cr_assert_eq(cfg.listen[1].port, 15674);
    stp_config_free(&cfg);
}

Test(config, last_scalar_flag_wins)
{
    struct stp_config cfg;
    cr_assert_eq(parse(&cfg, "--workers", "2", "--workers", "5"), STP_CONFIG_RUN);
    cr_assert_eq(cfg.workers, 5);
    stp_config_free(&cfg);
}

Test(config, repeated_listen_replaces_the_default)
{
    struct stp_config cfg;
    cr_assert_eq(parse(&cfg, "--listen", "stomp://127.0.0.1:0", "--listen", "ws://127.0.0.1:0"),
                 STP_CONFIG_RUN);
    cr_assert_eq(cfg.nlisten, 2);
    cr_assert_eq(cfg.listen[0].scheme, STP_SCHEME_STOMP);
    cr_assert_eq(cfg.listen[0].port, 0);
    cr_assert_eq(cfg.listen[1].scheme, STP_SCHEME_WS);
    cr_assert_str_eq(cfg.listen[1].path, "/ws");
    stp_config_free(&cfg);
}

Test(config, repeatable_flag_replaces_the_whole_variable_list)
{
    char *env[] = {"STAMPEDE_LISTEN=stomp://127.0.0.1:1,stomp://127.0.0.1:2",
                   "STAMPEDE_USER=a:1,b:2", "STAMPEDE_WS_ALLOWED_ORIGIN=http://x,http://y", NULL};
    struct stp_config cfg;
    cr_assert_eq(parse_env(&cfg, env, "--listen", "stomp://127.0.0.1:3", "--user", "c:3",
                           "--ws-allowed-origin", "http://z", NULL),
                 STP_CONFIG_RUN);
    cr_assert_eq(cfg.nlisten, 1);
    cr_assert_eq(cfg.listen[0].port, 3);
    cr_assert_eq(cfg.nusers, 1);
    cr_assert_str_eq(cfg.users[0].login, "c");
    cr_assert_eq(cfg.nws_allowed_origins, 1);
    cr_assert_str_eq(cfg.ws_allowed_origins[0], "http://z");
    stp_config_free(&cfg);
}

Test(config, comma_separated_variable_lists)
{
    char *env[] = {"STAMPEDE_LISTEN=stomp://127.0.0.1:1, ws://[::1]:2/x ,,wss://h:3",
                   "STAMPEDE_USER=alice:one,bob:two:three,carol:",
                   "STAMPEDE_WS_ALLOWED_ORIGIN=http://a.test, https://b.test",
                   "STAMPEDE_TLS_CERT=/dev/null",
                   "STAMPEDE_TLS_KEY=/dev/null",
                   NULL};
    struct stp_config cfg;
    cr_assert_eq(parse_env(&cfg, env, NULL), STP_CONFIG_RUN);
    cr_assert_eq(cfg.nlisten, 3);
    cr_assert_eq(cfg.listen[0].port, 1);
    cr_assert_eq(cfg.listen[1].scheme, STP_SCHEME_WS);
    cr_assert_str_eq(cfg.listen[1].host, "::1");
    cr_assert_str_eq(cfg.listen[1].path, "/x");
    cr_assert_eq(cfg.listen[2].scheme, STP_SCHEME_WSS);
    cr_assert_eq(cfg.nusers, 3);
    cr_assert_str_eq(cfg.users[0].login, "alice");
    cr_assert_str_eq(cfg.users[0].passcode, "one");
    cr_assert_str_eq(cfg.users[1].login, "bob");
    cr_assert_str_eq(cfg.users[1].passcode, "two:three");
    cr_assert_str_eq(cfg.users[2].login, "carol");
    cr_assert_str_eq(cfg.users[2].passcode, "");
    cr_assert_eq(cfg.nws_allowed_origins, 2);
    cr_assert_str_eq(cfg.ws_allowed_origins[1], "https://b.test");
    stp_config_free(&cfg);
}

Test(config, repeated_users_in_order)
{
    struct stp_config cfg;
    cr_assert_eq(parse(&cfg, "--user", "a:x,y", "--user=b:", "--user", "c::"), STP_CONFIG_RUN);
    cr_assert_eq(cfg.nusers, 3);
    cr_assert_str_eq(cfg.users[0].passcode, "x,y", "a flag's value is not split at commas");
    cr_assert_str_eq(cfg.users[1].login, "b");
    cr_assert_str_eq(cfg.users[1].passcode, "");
    cr_assert_str_eq(cfg.users[2].passcode, ":");
    stp_config_free(&cfg);
}

Test(config, sixteen_listeners_fit)
{
    char *env[] = {"STAMPEDE_LISTEN=stomp://a:1,stomp://a:2,stomp://a:3,stomp://a:4,stomp://a:5,"
                   "stomp://a:6,stomp://a:7,stomp://a:8,stomp://a:9,stomp://a:10,stomp://a:11,"
                   "stomp://a:12,stomp://a:13,stomp://a:14,stomp://a:15,stomp://a:16",
                   NULL};
    struct stp_config cfg;
    cr_assert_eq(parse_env(&cfg, env, NULL), STP_CONFIG_RUN);
    cr_assert_eq(cfg.nlisten, 16);
    cr_assert_eq(cfg.listen[15].port, 16);
    stp_config_free(&cfg);
}

/* ---- units ---- */

struct unit_case {
    const char *text;
    uint64_t want;
};

Test(config, size_suffixes)
{
    static const struct unit_case cases[] = {
        {"1", 1},        {"4096", 4096},        {"4K", 4096},       {"4KiB", 4096},
        {"4k", 4096},    {"4kib", 4096},        {"2M", 2 << 20},    {"2MiB", 2 << 20},
        {"1G", 1 << 30}, {"1GiB", 1 << 30},     {"4 MiB", 4 << 20}, {"10B", 10},
        {"0001K", 1024}, {"1048576K", 1 << 30},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct stp_config cfg;
        cr_assert_eq(parse(&cfg, "--max-frame-size", cases[i].text), STP_CONFIG_RUN, "%s",
                     cases[i].text);
        cr_assert_eq(cfg.max_frame_size, cases[i].want, "%s", cases[i].text);
        stp_config_free(&cfg);
    }
    struct stp_config cfg;
    cr_assert_eq(parse(&cfg, "--memory-budget", "1T"), STP_CONFIG_RUN);
    cr_assert_eq(cfg.memory_budget, (size_t)1 << 40);
    stp_config_free(&cfg);
}

Test(config, duration_suffixes)
{
    static const struct unit_case cases[] = {
        {"250", 250},  {"250ms", 250},  {"2s", 2000},   {"2 s", 2000},
        {"1m", 60000}, {"1h", 3600000}, {"90S", 90000}, {"24h", 86400000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct stp_config cfg;
        cr_assert_eq(parse(&cfg, "--login-timeout", cases[i].text), STP_CONFIG_RUN, "%s",
                     cases[i].text);
        cr_assert_eq(cfg.login_timeout_ms, cases[i].want, "%s", cases[i].text);
        stp_config_free(&cfg);
    }
}

Test(config, heartbeat_min_may_be_zero_and_equal_bounds_are_fine)
{
    struct stp_config cfg;
    cr_assert_eq(parse(&cfg, "--heartbeat-min", "0", "--heartbeat-max", "5s"), STP_CONFIG_RUN);
    cr_assert_eq(cfg.heartbeat_min_ms, 0);
    stp_config_free(&cfg);
    cr_assert_eq(parse(&cfg, "--heartbeat-min", "5s", "--heartbeat-max", "5000"), STP_CONFIG_RUN);
    stp_config_free(&cfg);
}

Test(config, workers_bounds)
{
    struct stp_config cfg;
    cr_assert_eq(parse(&cfg, "--workers", "1"), STP_CONFIG_RUN);
    cr_assert_eq(cfg.workers, 1);
    stp_config_free(&cfg);
    cr_assert_eq(parse(&cfg, "--workers", "1024"), STP_CONFIG_RUN);
    cr_assert_eq(cfg.workers, 1024);
    stp_config_free(&cfg);
}

Test(config, choices)
{
    static const char *levels[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        struct stp_config cfg;
        cr_assert_eq(parse(&cfg, "--log-level", levels[i]), STP_CONFIG_RUN);
        cr_assert_eq(cfg.log_level, i);
        stp_config_free(&cfg);
    }
    struct stp_config cfg;
    cr_assert_eq(parse(&cfg, "--ws-frame", "text"), STP_CONFIG_RUN);
    cr_assert_eq(cfg.ws_frame_binary, false);
    stp_config_free(&cfg);
    cr_assert_eq(parse(&cfg, "--tls-ca", "/dev/null", "--tls-verify-client", "optional"),
                 STP_CONFIG_RUN);
    cr_assert_eq(cfg.tls_verify_client, 1);
    stp_config_free(&cfg);
}

Test(config, free_twice_is_harmless)
{
    struct stp_config cfg;
    cr_assert_eq(parse(&cfg, "--user", "a:b", "--ws-allowed-origin", "http://x"), STP_CONFIG_RUN);
    stp_config_free(&cfg);
    assert_zeroed(&cfg);
    stp_config_free(&cfg);
}

/* ---- --help and --version ---- */

Test(config, help_lists_every_flag_variable_and_default, .init = redirect_out)
{
    static const char *expect[] = {
        "--listen URL",
        "STAMPEDE_LISTEN",
        "default: stomp://0.0.0.0:61613",
        "--workers N",
        "STAMPEDE_WORKERS",
        "--user LOGIN:PASSCODE",
        "STAMPEDE_USER",
        "--max-frame-size SIZE",
        "STAMPEDE_MAX_FRAME_SIZE",
        "default: 4MiB",
        "--max-headers N",
        "STAMPEDE_MAX_HEADERS",
        "default: 1000",
        "--max-header-length SIZE",
        "STAMPEDE_MAX_HEADER_LENGTH",
        "default: 64KiB",
        "--login-timeout MS",
        "STAMPEDE_LOGIN_TIMEOUT",
        "default: 10s",
        "--heartbeat-min MS",
        "STAMPEDE_HEARTBEAT_MIN",
        "default: 100ms",
        "--heartbeat-max MS",
        "STAMPEDE_HEARTBEAT_MAX",
        "default: 60s",
        "--queue-max-messages N",
        "STAMPEDE_QUEUE_MAX_MESSAGES",
        "default: 1000000",
        "--queue-max-bytes SIZE",
        "STAMPEDE_QUEUE_MAX_BYTES",
        "default: 1GiB",
        "--max-pending-output SIZE",
        "STAMPEDE_MAX_PENDING_OUTPUT",
        "default: 16MiB",
        "--memory-budget SIZE",
        "STAMPEDE_MEMORY_BUDGET",
        "default: 4GiB",
        "--ws-allowed-origin ORIGIN",
        "STAMPEDE_WS_ALLOWED_ORIGIN",
        "--ws-frame text|binary",
        "STAMPEDE_WS_FRAME",
        "--tls-cert FILE",
        "STAMPEDE_TLS_CERT",
        "--tls-key FILE",
        "STAMPEDE_TLS_KEY",
        "--tls-key-password-file FILE",
        "STAMPEDE_TLS_KEY_PASSWORD_FILE",
        "--tls-ca FILE",
        "STAMPEDE_TLS_CA",
        "--tls-verify-client none|optional|required",
        "STAMPEDE_TLS_VERIFY_CLIENT",
        "--tls-ciphers LIST",
        "STAMPEDE_TLS_CIPHERS",
        "--log-level debug|info|warn|error",
        "STAMPEDE_LOG_LEVEL",
        "default: info",
        "--help",
        "--version",
        "Usage: stampede",
    };
    struct stp_config cfg;
    cr_assert_eq(parse(&cfg, "--workers", "2", "--help"), STP_CONFIG_EXIT);
    char buf[16384];
    drain(stdout, STDOUT_FILENO, cr_get_redirected_stdout(), buf, sizeof(buf));
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++)
        cr_assert_not_null(strstr(buf, expect[i]), "--help lacks '%s'", expect[i]);
    char workers[64];
    snprintf(workers, sizeof(workers), "default: %u (the CPUs", stp_available_cpus());
    cr_assert_not_null(strstr(buf, workers), "--help lacks '%s'", workers);
}

/* Each "  --flag-name" entry's "env" line names STAMPEDE_FLAG_NAME. */
Test(config, help_pairs_each_flag_with_its_variable, .init = redirect_out)
{
    struct stp_config cfg;
    cr_assert_eq(parse(&cfg, "--help"), STP_CONFIG_EXIT);
    char buf[16384], want[128];
    drain(stdout, STDOUT_FILENO, cr_get_redirected_stdout(), buf, sizeof(buf));
    int flags = 0;
    for (char *line = strstr(buf, "\n  --"); line; line = strstr(line + 1, "\n  --")) {
        const char *name = line + 5;
        size_t len = strcspn(name, " \n");
        if (strncmp(name, "help", len) == 0 || strncmp(name, "version", len) == 0)
            continue;
        size_t k = (size_t)snprintf(want, sizeof(want), "env STAMPEDE_");
        for (size_t i = 0; i < len && k < sizeof(want) - 2; i++)
            want[k++] = name[i] == '-' ? '_' : (char)(name[i] - 'a' + 'A');
        strcpy(want + k, ";");
        char *next = strstr(line + 1, "\n  --");
        char *env = strstr(line, want);
        cr_assert(env && (!next || env < next), "--%.*s lacks '%s'", (int)len, name, want);
        flags++;
    }
    cr_assert_eq(flags, 49);
}

Test(config, help_ignores_the_environment, .init = redirect_out)
{
    char *env[] = {"STAMPEDE_WORKERS=abc", NULL};
    struct stp_config cfg;
    cr_assert_eq(parse_env(&cfg, env, "--help", NULL), STP_CONFIG_EXIT);
}

Test(config, version, .init = redirect_out)
{
    struct stp_config cfg;
    cr_assert_eq(parse(&cfg, "--version"), STP_CONFIG_EXIT);
    char buf[256];
    drain(stdout, STDOUT_FILENO, cr_get_redirected_stdout(), buf, sizeof(buf));
    cr_assert_str_eq(buf, "stampede " STP_VERSION "\n");
}

/* ---- errors: exactly one line naming the culprit, result 2, cfg cleared ---- */

#define EXPECT_ERROR(want, ...)                                                                    \
    do {                                                                                           \
        struct stp_config cfg_;                                                                    \
        cr_assert_eq(parse(&cfg_, __VA_ARGS__), STP_CONFIG_ERROR);                                 \
        assert_zeroed(&cfg_);                                                                      \
        assert_one_error_line(want);                                                               \
    } while (0)

#define EXPECT_ENV_ERROR(want, ...)                                                                \
    do {                                                                                           \
        char *env_[] = {__VA_ARGS__, NULL};                                                        \
        struct stp_config cfg_;                                                                    \
        cr_assert_eq(parse_env(&cfg_, env_, NULL), STP_CONFIG_ERROR);                              \
        assert_zeroed(&cfg_);                                                                      \
        assert_one_error_line(want);                                                               \
    } while (0)

TestSuite(config_errors, .init = redirect_err);

Test(config_errors, unknown_option)
{
    struct stp_config cfg;
    cr_assert_eq(parse(&cfg, "--frobnicate"), STP_CONFIG_ERROR);
    assert_error_line_is("stampede: unknown option '--frobnicate' (see --help)\n");
}

Test(config_errors, unknown_option_with_value)
{
    EXPECT_ERROR("unknown option '--frobnicate' (see --help)", "--workers", "2", "--frobnicate=3");
}

Test(config_errors, unknown_short_option)
{
    EXPECT_ERROR("unknown option '-x'", "-x");
}

Test(config_errors, bare_double_dash)
{
    EXPECT_ERROR("'--'", "--");
}

Test(config_errors, stray_argument)
{
    EXPECT_ERROR("unexpected argument 'foo'", "foo");
}

Test(config_errors, prefix_of_a_flag_is_unknown)
{
    EXPECT_ERROR("unknown option '--work'", "--work", "2");
}

Test(config_errors, missing_value_at_the_end)
{
    struct stp_config cfg;
    cr_assert_eq(parse(&cfg, "--workers"), STP_CONFIG_ERROR);
    assert_error_line_is("stampede: --workers: missing value\n");
}

Test(config_errors, missing_value_before_another_flag)
{
    EXPECT_ERROR("--tls-cert: missing value", "--tls-cert", "--tls-key", "/dev/null");
}

Test(config_errors, help_takes_no_value)
{
    EXPECT_ERROR("--help: takes no value", "--help=yes");
}

Test(config_errors, bad_workers)
{
    struct stp_config cfg;
    cr_assert_eq(parse(&cfg, "--workers", "abc"), STP_CONFIG_ERROR);
    assert_error_line_is("stampede: --workers: 'abc' is not a number between 1 and 1024\n");
}

Test(config_errors, workers_zero)
{
    EXPECT_ERROR("--workers: '0' is not a number between 1 and 1024", "--workers=0");
}

Test(config_errors, workers_too_many)
{
    EXPECT_ERROR("--workers: '1025'", "--workers", "1025");
}

Test(config_errors, workers_negative)
{
    EXPECT_ERROR("--workers: '-1'", "--workers=-1");
}

Test(config_errors, workers_with_suffix)
{
    EXPECT_ERROR("--workers: '2K'", "--workers", "2K");
}

Test(config_errors, workers_empty)
{
    EXPECT_ERROR("--workers: ''", "--workers=");
}

Test(config_errors, count_overflow)
{
    EXPECT_ERROR("--max-headers: '99999999999999999999999'", "--max-headers",
                 "99999999999999999999999");
}

Test(config_errors, bad_size_suffix)
{
    EXPECT_ERROR("--max-frame-size: '4X' is not a size between 1B and 1GiB", "--max-frame-size",
                 "4X");
}

Test(config_errors, fractional_size)
{
    EXPECT_ERROR("--queue-max-bytes: '1.5G'", "--queue-max-bytes", "1.5G");
}

Test(config_errors, size_suffix_only)
{
    EXPECT_ERROR("--max-pending-output: 'K'", "--max-pending-output", "K");
}

Test(config_errors, size_zero)
{
    EXPECT_ERROR("--max-header-length: '0'", "--max-header-length", "0");
}

Test(config_errors, size_above_range)
{
    EXPECT_ERROR("--max-frame-size: '2GiB'", "--max-frame-size", "2GiB");
}

Test(config_errors, size_multiplication_overflow)
{
    EXPECT_ERROR("--memory-budget: '99999999999T'", "--memory-budget", "99999999999T");
}

Test(config_errors, bad_duration_unit)
{
    EXPECT_ERROR("--login-timeout: '1d' is not a duration between 1ms and 24h", "--login-timeout",
                 "1d");
}

Test(config_errors, duration_zero_login_timeout)
{
    EXPECT_ERROR("--login-timeout: '0'", "--login-timeout", "0");
}

Test(config_errors, heartbeat_min_above_max)
{
    EXPECT_ERROR("--heartbeat-min (5s) is above --heartbeat-max (1s)", "--heartbeat-min", "5s",
                 "--heartbeat-max", "1s");
}

Test(config_errors, heartbeat_min_above_default_max)
{
    EXPECT_ERROR("--heartbeat-min (2m) is above --heartbeat-max (1m)", "--heartbeat-min", "2m");
}

Test(config_errors, bad_ws_frame)
{
    EXPECT_ERROR("--ws-frame: 'json' is not one of text|binary", "--ws-frame", "json");
}

Test(config_errors, bad_log_level)
{
    EXPECT_ERROR("--log-level: 'loud'", "--log-level", "loud");
}

Test(config_errors, bad_verify_mode)
{
    EXPECT_ERROR("--tls-verify-client: 'always'", "--tls-verify-client", "always");
}

Test(config_errors, tls_listener_without_cert_or_key)
{
    EXPECT_ERROR("--listen stomp+ssl://0.0.0.0:61614: a TLS listener needs --tls-cert and "
                 "--tls-key",
                 "--listen", "stomp+ssl://0.0.0.0:61614");
}

Test(config_errors, wss_listener_with_cert_but_no_key)
{
    EXPECT_ERROR("--listen wss://[::]:15673/ws: a TLS listener needs --tls-cert and --tls-key",
                 "--listen", "wss://[::]:15673", "--tls-cert", "/dev/null");
}

Test(config_errors, verify_client_without_ca)
{
    EXPECT_ERROR("--tls-verify-client required needs --tls-ca", "--tls-verify-client", "required");
}

Test(config_errors, unreadable_tls_file)
{
    EXPECT_ERROR("--tls-key: cannot read '/nonexistent/key.pem'", "--tls-key",
                 "/nonexistent/key.pem");
}

Test(config_errors, empty_ciphers)
{
    EXPECT_ERROR("--tls-ciphers: the value is empty", "--tls-ciphers=");
}

Test(config_errors, user_without_colon)
{
    EXPECT_ERROR("--user: 'guest' is not LOGIN:PASSCODE", "--user", "guest");
}

Test(config_errors, user_with_empty_login)
{
    EXPECT_ERROR("--user: the login before ':' is empty", "--user", ":secret");
    /* The passcode is not echoed. */
}

Test(config_errors, user_given_twice)
{
    EXPECT_ERROR("--user: login 'a' is given twice", "--user", "a:1", "--user", "b:2", "--user",
                 "a:3");
}

Test(config_errors, empty_origin)
{
    EXPECT_ERROR("--ws-allowed-origin: the origin is empty", "--ws-allowed-origin=");
}

Test(config_errors, bad_listen_url)
{
    EXPECT_ERROR("--listen: 'http://0.0.0.0:80' is not a listen URL: unknown scheme", "--listen",
                 "http://0.0.0.0:80");
}

Test(config_errors, bad_listen_port)
{
    EXPECT_ERROR("--listen: 'stomp://0.0.0.0:70000' is not a listen URL: bad port", "--listen",
                 "stomp://0.0.0.0:70000");
}

Test(config_errors, seventeen_listeners)
{
    EXPECT_ERROR("--listen: more than 16 listeners", "--listen=stomp://a:1", "--listen=stomp://a:2",
                 "--listen=stomp://a:3", "--listen=stomp://a:4", "--listen=stomp://a:5",
                 "--listen=stomp://a:6", "--listen=stomp://a:7", "--listen=stomp://a:8",
                 "--listen=stomp://a:9", "--listen=stomp://a:10", "--listen=stomp://a:11",
                 "--listen=stomp://a:12", "--listen=stomp://a:13", "--listen=stomp://a:14",
                 "--listen=stomp://a:15", "--listen=stomp://a:16", "--listen=stomp://a:17");
}

Test(config_errors, error_after_allocations_frees_them)
{
    /* Users, origins and TLS strings are allocated before the bad value;
     * ASan builds check that they are released. */
    EXPECT_ERROR("--workers", "--user", "a:b", "--user", "c:d", "--ws-allowed-origin", "http://x",
                 "--tls-cert", "/dev/null", "--tls-ciphers", "X", "--workers", "none");
}

Test(config_errors, bad_variable_names_the_variable)
{
    EXPECT_ENV_ERROR("stampede: STAMPEDE_WORKERS: 'abc' is not a number between 1 and 1024",
                     "STAMPEDE_WORKERS=abc");
}

Test(config_errors, bad_size_variable)
{
    EXPECT_ENV_ERROR("STAMPEDE_MAX_FRAME_SIZE: '4 XB'", "STAMPEDE_MAX_FRAME_SIZE=4 XB");
}

Test(config_errors, bad_duration_variable)
{
    EXPECT_ENV_ERROR("STAMPEDE_HEARTBEAT_MAX: 'soon'", "STAMPEDE_HEARTBEAT_MAX=soon");
}

Test(config_errors, bad_item_in_listen_variable)
{
    EXPECT_ENV_ERROR("STAMPEDE_LISTEN: 'stomp://h:99999' is not a listen URL",
                     "STAMPEDE_LISTEN=stomp://h:1,stomp://h:99999");
}

Test(config_errors, bad_item_in_user_variable)
{
    EXPECT_ENV_ERROR("STAMPEDE_USER: 'bob' is not LOGIN:PASSCODE", "STAMPEDE_USER=alice:x,bob");
}

Test(config_errors, list_variable_with_only_commas)
{
    EXPECT_ENV_ERROR("STAMPEDE_LISTEN: the list is empty", "STAMPEDE_LISTEN= , ,");
}

Test(config_errors, bad_choice_variable)
{
    EXPECT_ENV_ERROR("STAMPEDE_WS_FRAME: 'utf8'", "STAMPEDE_WS_FRAME=utf8");
}

Test(config_errors, control_bytes_stay_on_one_line)
{
    EXPECT_ENV_ERROR("STAMPEDE_WORKERS: '1?2'", "STAMPEDE_WORKERS=1\n2");
}

Test(config_errors, long_values_are_cut)
{
    char big[600];
    memset(big, '9', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    EXPECT_ERROR("...' is not a number", "--workers", big);
}

Test(config_errors, tls_listener_from_the_environment)
{
    EXPECT_ENV_ERROR("a TLS listener needs --tls-cert and --tls-key",
                     "STAMPEDE_LISTEN=stomp://h:1,wss://h:2/x");
}

/* ---- connection limits (issue 9) ---- */

Test(config, connection_limits)
{
    struct stp_config cfg;
    cr_assert_eq(parse_none(&cfg), STP_CONFIG_RUN);
    cr_assert_eq(cfg.max_connections, 100000);
    cr_assert_eq(cfg.max_connections_per_ip, 10000);
    stp_config_free(&cfg);
    cr_assert_eq(parse(&cfg, "--max-connections", "50", "--max-connections-per-ip=7"),
                 STP_CONFIG_RUN);
    cr_assert_eq(cfg.max_connections, 50);
    cr_assert_eq(cfg.max_connections_per_ip, 7);
    stp_config_free(&cfg);
    char *env[] = {"STAMPEDE_MAX_CONNECTIONS=60", "STAMPEDE_MAX_CONNECTIONS_PER_IP=8", NULL};
    cr_assert_eq(parse_env(&cfg, env, NULL), STP_CONFIG_RUN);
    cr_assert_eq(cfg.max_connections, 60);
    cr_assert_eq(cfg.max_connections_per_ip, 8);
    stp_config_free(&cfg);
    cr_assert_eq(parse_env(&cfg, env, "--max-connections-per-ip", "9", NULL), STP_CONFIG_RUN);
    cr_assert_eq(cfg.max_connections, 60);
    cr_assert_eq(cfg.max_connections_per_ip, 9);
    stp_config_free(&cfg);
}

Test(config, connection_limits_in_help, .init = redirect_out)
{
    static const char *expect[] = {
        "--max-connections N",        "STAMPEDE_MAX_CONNECTIONS",        "default: 100000",
        "--max-connections-per-ip N", "STAMPEDE_MAX_CONNECTIONS_PER_IP", "default: 10000",
    };
    struct stp_config cfg;
    cr_assert_eq(parse(&cfg, "--help"), STP_CONFIG_EXIT);
    char buf[32768];
    drain(stdout, STDOUT_FILENO, cr_get_redirected_stdout(), buf, sizeof(buf));
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++)
        cr_assert_not_null(strstr(buf, expect[i]), "--help lacks '%s'", expect[i]);
}

Test(config_errors, max_connections_zero)
{
    EXPECT_ERROR("--max-connections: '0' is not a number between 1 and 100000000",
                 "--max-connections", "0");
}

Test(config_errors, max_connections_per_ip_suffix)
{
    EXPECT_ERROR("--max-connections-per-ip: '10k'", "--max-connections-per-ip", "10k");
}

Test(config_errors, max_connections_per_ip_variable_too_big)
{
    EXPECT_ENV_ERROR("STAMPEDE_MAX_CONNECTIONS_PER_IP: '100000001'",
                     "STAMPEDE_MAX_CONNECTIONS_PER_IP=100000001");
}

/* ---- listen URLs ---- */

Test(listen_url, ipv4_host_and_port)
{
    struct stp_listen_url u;
    cr_assert_eq(stp_listen_url_parse("stomp://127.0.0.1:61613", &u), 0);
    cr_assert_eq(u.scheme, STP_SCHEME_STOMP);
    cr_assert_str_eq(u.host, "127.0.0.1");
    cr_assert_eq(u.port, 61613);
}

Test(listen_url, ipv6_in_brackets)
{
    struct stp_listen_url u;
    cr_assert_eq(stp_listen_url_parse("stomp+ssl://[::1]:61614", &u), 0);
    cr_assert_eq(u.scheme, STP_SCHEME_STOMP_SSL);
    cr_assert_str_eq(u.host, "::1");
    cr_assert_eq(u.port, 61614);
    cr_assert_eq(stp_listen_url_parse("ws://[2001:db8::5]:80/stomp", &u), 0);
    cr_assert_str_eq(u.host, "2001:db8::5");
    cr_assert_str_eq(u.path, "/stomp");
}

Test(listen_url, names_and_ports)
{
    struct stp_listen_url u;
    cr_assert_eq(stp_listen_url_parse("stomp://localhost:0", &u), 0);
    cr_assert_str_eq(u.host, "localhost");
    cr_assert_eq(u.port, 0);
    cr_assert_eq(stp_listen_url_parse("stomp://broker-1.example_net:65535", &u), 0);
    cr_assert_eq(u.port, 65535);
    cr_assert_eq(stp_listen_url_parse("STOMP://h:1/", &u), 0, "schemes are case-insensitive");
}

Test(listen_url, ws_paths)
{
    struct stp_listen_url u;
    cr_assert_eq(stp_listen_url_parse("ws://0.0.0.0:15674", &u), 0);
    cr_assert_eq(u.scheme, STP_SCHEME_WS);
    cr_assert_str_eq(u.path, "/ws");
    cr_assert_eq(stp_listen_url_parse("wss://0.0.0.0:15673/a/b-c_d.e", &u), 0);
    cr_assert_eq(u.scheme, STP_SCHEME_WSS);
    cr_assert_str_eq(u.path, "/a/b-c_d.e");
    cr_assert_eq(stp_listen_url_parse("ws://h:1/", &u), 0);
    cr_assert_str_eq(u.path, "/");
}

Test(listen_url, missing_port_takes_the_conventional_one)
{
    static const struct {
        const char *text;
        uint16_t port;
    } cases[] = {{"stomp://h", 61613},
                 {"stomp+ssl://h", 61614},
                 {"ws://h", 15674},
                 {"wss://h/x", 15673},
                 {"stomp://[::]", 61613}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct stp_listen_url u;
        cr_assert_eq(stp_listen_url_parse(cases[i].text, &u), 0, "%s", cases[i].text);
        cr_assert_eq(u.port, cases[i].port, "%s", cases[i].text);
    }
}

Test(listen_url, rejects)
{
    static const char *bad[] = {
        "",
        "0.0.0.0:61613",
        "http://0.0.0.0:80",
        "stomp:/h:1",
        "stomp://",
        "stomp://:61613",
        "stomp://h:",
        "stomp://h:65536",
        "stomp://h:123456",
        "stomp://h:-1",
        "stomp://h:12ab",
        "stomp://h:1:2",
        "stomp://[::1:61613",
        "stomp://[zz::1]:1",
        "stomp://[]:1",
        "stomp://[::1]x:1",
        "stomp://::1:61613",
        "stomp://1.2.3.999:1",
        "stomp://1.2.3:1",
        "stomp://a b:1",
        "stomp://h@x:1",
        "stomp://h:1/path",
        "stomp+ssl://h:1/x",
        "ws://h:1/p?q=1",
        "ws://h:1/p#f",
        "ws://h:1/a b",
        "wss://h:1x/ws",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct stp_listen_url u;
        cr_assert_eq(stp_listen_url_parse(bad[i], &u), STP_EINVAL, "accepted '%s'", bad[i]);
    }
}

Test(listen_url, rejects_overlong_host_and_path)
{
    char text[700];
    struct stp_listen_url u;
    snprintf(text, sizeof(text), "stomp://%0300d:1", 0);
    memset(text + 8, 'a', 300);
    cr_assert_eq(stp_listen_url_parse(text, &u), STP_EINVAL);
    strcpy(text, "ws://h:1/");
    memset(text + 9, 'p', 300);
    text[309] = '\0';
    cr_assert_eq(stp_listen_url_parse(text, &u), STP_EINVAL);
}

Test(listen_url, format)
{
    struct stp_listen_url u;
    char buf[600];
    cr_assert_eq(stp_listen_url_parse("stomp://0.0.0.0:0", &u), 0);
    stp_listen_url_format(&u, 40123, buf, sizeof(buf));
    cr_assert_str_eq(buf, "stomp://0.0.0.0:40123");
    cr_assert_eq(stp_listen_url_parse("stomp+ssl://[::1]:61614", &u), 0);
    stp_listen_url_format(&u, u.port, buf, sizeof(buf));
    cr_assert_str_eq(buf, "stomp+ssl://[::1]:61614");
    cr_assert_eq(stp_listen_url_parse("ws://localhost:15674", &u), 0);
    stp_listen_url_format(&u, u.port, buf, sizeof(buf));
    cr_assert_str_eq(buf, "ws://localhost:15674/ws");
    cr_assert_eq(stp_listen_url_parse("wss://[fe80::1]:1/x/y", &u), 0);
    stp_listen_url_format(&u, 2, buf, sizeof(buf));
    cr_assert_str_eq(buf, "wss://[fe80::1]:2/x/y");
}

Test(listen_url, format_truncates_safely)
{
    struct stp_listen_url u;
    char buf[10];
    cr_assert_eq(stp_listen_url_parse("ws://localhost:15674/longer/path", &u), 0);
    stp_listen_url_format(&u, u.port, buf, sizeof(buf));
    cr_assert_str_eq(buf, "ws://loca");
}

Test(listen_url, round_trip)
{
    static const char *urls[] = {"stomp://0.0.0.0:61613", "stomp+ssl://[::]:61614",
                                 "ws://127.0.0.1:15674/ws", "wss://example.org:443/stomp/ws"};
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        struct stp_listen_url u;
        char buf[600];
        cr_assert_eq(stp_listen_url_parse(urls[i], &u), 0, "%s", urls[i]);
        stp_listen_url_format(&u, u.port, buf, sizeof(buf));
        cr_assert_str_eq(buf, urls[i]);
    }
}

/* ---- per-client bounds (issue 9) ---- */

Test(config, per_client_bounds)
{
    struct stp_config cfg;
    cr_assert_eq(parse_none(&cfg), STP_CONFIG_RUN);
    cr_assert_eq(cfg.max_subscriptions, 1000);
    cr_assert_eq(cfg.max_transactions, 100);
    cr_assert_eq(cfg.max_transaction_frames, 10000);
    cr_assert_eq(cfg.max_transaction_bytes, (size_t)64 << 20);
    cr_assert_eq(cfg.max_unacked, 10000);
    cr_assert_eq(cfg.max_destination_length, 1024);
    cr_assert_eq(cfg.max_destinations, 100000);
    stp_config_free(&cfg);
    char *env[] = {"STAMPEDE_MAX_SUBSCRIPTIONS=7", "STAMPEDE_MAX_TRANSACTION_BYTES=1MiB",
                   "STAMPEDE_MAX_DESTINATIONS=9", NULL};
    cr_assert_eq(parse_env(&cfg, env, "--max-transactions", "3", "--max-transaction-frames=4",
                           "--max-unacked", "5", "--max-destination-length", "2KiB",
                           "--max-destinations", "10", NULL),
                 STP_CONFIG_RUN);
    cr_assert_eq(cfg.max_subscriptions, 7);
    cr_assert_eq(cfg.max_transactions, 3);
    cr_assert_eq(cfg.max_transaction_frames, 4);
    cr_assert_eq(cfg.max_transaction_bytes, (size_t)1 << 20);
    cr_assert_eq(cfg.max_unacked, 5);
    cr_assert_eq(cfg.max_destination_length, 2048);
    cr_assert_eq(cfg.max_destinations, 10); /* the flag beats its variable */
    stp_config_free(&cfg);
}

Test(config_errors, max_subscriptions_zero)
{
    EXPECT_ERROR("--max-subscriptions: '0' is not a number between 1 and 10000000",
                 "--max-subscriptions", "0");
}

Test(config_errors, max_destination_length_too_small)
{
    EXPECT_ERROR("--max-destination-length: '4' is not a size between 8B and 64KiB (bytes, or "
                 "with a K, KiB, M, MiB, G, GiB, T or TiB suffix)",
                 "--max-destination-length", "4");
}

Test(config_errors, max_unacked_from_the_environment)
{
    EXPECT_ENV_ERROR("STAMPEDE_MAX_UNACKED: 'lots' is not a number between 1 and 100000000",
                     "STAMPEDE_MAX_UNACKED=lots");
}

/* Durable queues (issue 12). */
Test(config, durable_flags)
{
    struct stp_config cfg;
    cr_assert_eq(parse_none(&cfg), STP_CONFIG_RUN);
    cr_assert_null(cfg.data_dir, "memory only by default");
    cr_assert_eq(cfg.slow_consumer_grace_ms, 5000);
    cr_assert_eq(cfg.max_redeliveries, 0);
    cr_assert_eq(cfg.dead_letter, true, "dead letters go to DLQ.<name> by default");
    stp_config_free(&cfg);
    char *env[] = {"STAMPEDE_DATA_DIR=/var/lib/x", "STAMPEDE_DEAD_LETTER=no",
                   "STAMPEDE_MAX_REDELIVERIES=9", NULL};
    cr_assert_eq(parse_env(&cfg, env, "--max-redeliveries", "3", NULL), STP_CONFIG_RUN);
    cr_assert_str_eq(cfg.data_dir, "/var/lib/x");
    cr_assert_eq(cfg.dead_letter, false);
    cr_assert_eq(cfg.max_redeliveries, 3); /* the flag beats its variable */
    stp_config_free(&cfg);
    cr_assert_eq(parse(&cfg, "--data-dir", "/tmp/d", "--dead-letter", "no"), STP_CONFIG_RUN);
    cr_assert_str_eq(cfg.data_dir, "/tmp/d");
    cr_assert_eq(cfg.dead_letter, false);
    stp_config_free(&cfg);
}

/* Publish de-duplication (issue 13). */
Test(config, dedup_flags)
{
    struct stp_config cfg;
    cr_assert_eq(parse_none(&cfg), STP_CONFIG_RUN);
    cr_assert_eq(cfg.dedup_window_ms, 120000, "two minutes by default");
    cr_assert_eq(cfg.dedup_max_ids, 100000);
    cr_assert_eq(cfg.dedup_max_memory, (size_t)256 << 20);
    stp_config_free(&cfg);
    char *env[] = {"STAMPEDE_DEDUP_WINDOW=10s", "STAMPEDE_DEDUP_MAX_IDS=7",
                   "STAMPEDE_DEDUP_MAX_MEMORY=1MiB", NULL};
    cr_assert_eq(parse_env(&cfg, env, "--dedup-max-ids", "5", NULL), STP_CONFIG_RUN);
    cr_assert_eq(cfg.dedup_window_ms, 10000);
    cr_assert_eq(cfg.dedup_max_ids, 5); /* the flag beats its variable */
    cr_assert_eq(cfg.dedup_max_memory, (size_t)1 << 20);
    stp_config_free(&cfg);
    cr_assert_eq(parse(&cfg, "--dedup-window", "0"), STP_CONFIG_RUN);
    cr_assert_eq(cfg.dedup_window_ms, 0, "0 turns de-duplication off");
    stp_config_free(&cfg);
}

Test(config_errors, dedup_window_bound)
{
    EXPECT_ERROR("--dedup-window: '2d' is not a duration between 0ms and 24h", "--dedup-window",
                 "2d");
}

Test(config_errors, dedup_max_ids_bound)
{
    EXPECT_ERROR("--dedup-max-ids: '0' is not a number between 1 and 100000000", "--dedup-max-ids",
                 "0");
}

Test(config_errors, max_redeliveries_not_a_number)
{
    EXPECT_ERROR("--max-redeliveries: '-1' is not a number between 0 and 1000000",
                 "--max-redeliveries", "-1");
}

/* Clustering on NATS (issue 14). */
Test(config, cluster_flags)
{
    struct stp_config cfg;
    cr_assert_eq(parse_none(&cfg), STP_CONFIG_RUN);
    cr_assert_eq(cfg.ncluster_urls, 0, "a single node by default");
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    cr_assert_not_null(cfg.node_name);
    if (strlen(host) <= 64 &&
        strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789_-.") == strlen(host) &&
        host[0])
        cr_assert_str_eq(cfg.node_name, host, "the host name by default");
    stp_config_free(&cfg);
    char *env[] = {"STAMPEDE_CLUSTER=nats://a:4222,tls://u:p@b:4443", "STAMPEDE_NODE_NAME=from-env",
                   NULL};
    cr_assert_eq(parse_env(&cfg, env, "--node-name", "n1.zone-a", NULL), STP_CONFIG_RUN);
    cr_assert_eq(cfg.ncluster_urls, 2);
    cr_assert_str_eq(cfg.cluster_urls[0], "nats://a:4222");
    cr_assert_str_eq(cfg.cluster_urls[1], "tls://u:p@b:4443");
    cr_assert_str_eq(cfg.node_name, "n1.zone-a"); /* the flag beats its variable */
    stp_config_free(&cfg);
    cr_assert_eq(parse_env(&cfg, env, "--cluster", "nats://c:1", NULL), STP_CONFIG_RUN);
    cr_assert_eq(cfg.ncluster_urls, 1, "a repeatable flag replaces its variable's list");
    cr_assert_str_eq(cfg.cluster_urls[0], "nats://c:1");
    cr_assert_str_eq(cfg.node_name, "from-env");
    stp_config_free(&cfg);
}

Test(config_errors, cluster_url_scheme)
{
    EXPECT_ERROR("--cluster: 'http://h:4222' is not a nats:// or tls:// URL", "--cluster",
                 "http://h:4222");
}

Test(config_errors, cluster_url_no_host)
{
    EXPECT_ERROR("--cluster: 'nats://' has no host or is longer than 1024 bytes", "--cluster",
                 "nats://");
}

Test(config_errors, cluster_url_control_byte)
{
    EXPECT_ERROR("--cluster: 'nats://a?b:1' contains a space, a comma or a control byte",
                 "--cluster",
                 "nats://a\x01"
                 "b:1");
}

Test(config_errors, node_name_bad)
{
    EXPECT_ERROR("--node-name: 'a/b' is not 1-64 letters, digits, '_', '-' or '.'", "--node-name",
                 "a/b");
}

Test(config_errors, node_name_empty)
{
    EXPECT_ERROR("--node-name: '' is not 1-64 letters, digits, '_', '-' or '.'", "--node-name", "");
}
