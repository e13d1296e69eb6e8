/*
 * tls_engine.c - one TLS connection over in-memory buffers (contract in tls.h).
 *
 * The engine owns an mbedtls_ssl_context, the ciphertext fed to it and not yet
 * consumed (`in`), the plaintext queued and not yet sealed into a record
 * (`plain`), and two ciphertext output buffers: one may be out with the
 * caller (taken, being written by the socket) while the other fills. mbedTLS
 * talks to these buffers through BIO callbacks: recv returns WANT_READ when
 * the fed bytes run out, send always takes everything. One worker thread
 * owns an engine; nothing here blocks or locks.
 */
#include "tls_internal.h"

#include "stampede/buf.h"
#include "stampede/error.h"

#include <assert.h>
#include <limits.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/ssl_internal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct stp_tls {
    mbedtls_ssl_context ssl; /* first: the SNI callback gets back to the engine from it */
    struct stp_tls_config *cfg;
    struct stp_tls_rng *rng;
    enum stp_tls_state state;
    int err;           /* STP_E* code of the failure (FAILED state) */
    int mbed_err;      /* mbedTLS code of the failure, 0 if none */
    bool resumed;      /* the handshake resumed a session */
    bool taken;        /* out[fill ^ 1] is with the caller */
    int fill;          /* output buffer being filled */
    unsigned sniffed;  /* first bytes of a server stream checked (up to 3) */
    size_t rec;        /* plaintext bytes per full record, known after the handshake */
    struct stp_buf in; /* ciphertext fed; bytes before in_off were given to mbedTLS */
    size_t in_off;
    const unsigned char *src; /* what bio_recv reads from during a call into mbedTLS */
    size_t src_len;
    struct stp_buf plain; /* plaintext queued by stp_tls_write, not sealed yet */
    struct stp_buf out[2];
    char *sni;
};
_Static_assert(offsetof(struct stp_tls, ssl) == 0, "the SNI callback casts ssl to the engine");

/*
 * Our buffers are freed as soon as they empty, so an idle engine holds only
 * mbedTLS's own state (its two 16 KiB record buffers are most of it).
 * Allocating again per read or flush costs nothing measurable next to AEAD.
 */
static void trim(struct stp_buf *b)
{
    if (b->len == 0)
        stp_buf_free(b);
}

static struct stp_tls_rng *bind_rng(struct stp_tls *t)
{
    struct stp_tls_rng *prev = stp_tls__cur_rng;
    stp_tls__cur_rng = t->rng;
    return prev;
}

static void unbind_rng(struct stp_tls_rng *prev)
{
    stp_tls__cur_rng = prev;
}

static int fail(struct stp_tls *t, int mbed_err)
{
    bool nomem = mbed_err == MBEDTLS_ERR_SSL_ALLOC_FAILED;
    t->state = STP_TLS_FAILED;
    t->mbed_err = mbed_err;
    t->err = nomem ? STP_ENOMEM : STP_ETLS;
    return t->err;
}

static int bio_send(void *ctx, const unsigned char *p, size_t n)
{
    struct stp_tls *t = ctx;
    assert(n <= INT_MAX);
    if (stp_buf_append(&t->out[t->fill], p, n))
        return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    return (int)n;
}

static int bio_recv(void *ctx, unsigned char *p, size_t n)
{
    struct stp_tls *t = ctx;
    if (t->src_len == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    size_t k = n < t->src_len ? n : t->src_len;
    k = k < INT_MAX ? k : INT_MAX;
    memcpy(p, t->src, k);
    t->src += k;
    t->src_len -= k;
    return (int)k;
}

/* Let bio_recv see the unconsumed fed bytes... */
static void src_open(struct stp_tls *t)
{
    /* in.data is NULL until something was fed (a client's first flight). */
    t->src = t->in.data ? (const unsigned char *)t->in.data + t->in_off : NULL;
    t->src_len = t->in.len - t->in_off;
}

/* ...and afterwards remember how far mbedTLS got. */
static void src_close(struct stp_tls *t)
{
    t->in_off = t->in.len - t->src_len;
    t->src = NULL;
    t->src_len = 0;
    if (t->in_off == t->in.len) {
        stp_buf_reset(&t->in);
        t->in_off = 0;
        trim(&t->in);
    }
}

static bool can_seal(const struct stp_tls *t)
{
    return t->state == STP_TLS_OPEN || t->state == STP_TLS_PEER_CLOSED;
}

/* Encrypt n plaintext bytes (n <= rec: one record) into the output. */
static int seal(struct stp_tls *t, const unsigned char *p, size_t n)
{
    while (n > 0) {
        int mrc = mbedtls_ssl_write(&t->ssl, p, n);
        if (mrc < 0)
            return fail(t, mrc); /* never WANT_WRITE: bio_send takes everything */
        assert(mrc > 0 && (size_t)mrc <= n);
        p += mrc;
        n -= (size_t)mrc;
    }
    return 0;
}

/* Seal the queued plaintext: the full records, and the tail too if `all`. */
static int seal_queued(struct stp_tls *t, bool all)
{
    const unsigned char *p = (const unsigned char *)t->plain.data;
    size_t off = 0, len = t->plain.len;
    int rc = 0;
    while (!rc && len - off >= t->rec) {
        rc = seal(t, p + off, t->rec);
        off += t->rec;
    }
    if (!rc && all && off < len) {
        rc = seal(t, p + off, len - off);
        off = len;
    }
    stp_buf_consume(&t->plain, off);
    return rc;
}

/* Step the handshake as far as the fed bytes allow. */
static int drive(struct stp_tls *t)
{
    assert(t->state == STP_TLS_HANDSHAKE);
    int mrc = 0;
    src_open(t);
    while (t->ssl.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
        mrc = mbedtls_ssl_handshake_step(&t->ssl);
        if (t->ssl.handshake)
            t->resumed = t->ssl.handshake->resume != 0;
        if (mrc)
            break;
    }
    src_close(t);
    if (mrc == MBEDTLS_ERR_SSL_WANT_READ || mrc == MBEDTLS_ERR_SSL_WANT_WRITE)
        return 0;
    if (mrc)
        return fail(t, mrc);
    t->state = STP_TLS_OPEN;
    int max = mbedtls_ssl_get_max_out_record_payload(&t->ssl);
    if (max <= 0)
        return fail(t, max < 0 ? max : MBEDTLS_ERR_SSL_INTERNAL_ERROR);
    t->rec = (size_t)max;
    /* Plaintext written during the handshake goes out now, tail included. */
    int rc = seal_queued(t, true);
    trim(&t->plain);
    return rc;
}

/* A server's first three bytes must open a TLS handshake record. */
static int sniff(struct stp_tls *t, const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len && t->sniffed < 3; i++, t->sniffed++) {
        unsigned char b = p[i];
        bool ok = t->sniffed == 0 ? b == 0x16 : t->sniffed == 1 ? b == 0x03 : b <= 0x04;
        if (!ok) {
            t->state = STP_TLS_FAILED;
            t->err = STP_EPROTO;
            return STP_EPROTO;
        }
    }
    return 0;
}

int stp_tls_new(struct stp_tls **out, struct stp_tls_config *cfg, struct stp_tls_rng *rng)
{
    assert(cfg && rng);
    struct stp_tls *t = calloc(1, sizeof(*t));
    if (!t)
        return STP_ENOMEM;
    mbedtls_ssl_init(&t->ssl);
    t->cfg = stp_tls_config_ref(cfg);
    t->rng = rng;
    t->state = STP_TLS_HANDSHAKE;
    int mrc = mbedtls_ssl_setup(&t->ssl, &cfg->conf);
    if (!mrc && !cfg->server && cfg->paths.server_name)
        mrc = mbedtls_ssl_set_hostname(&t->ssl, cfg->paths.server_name);
    if (mrc) {
        stp_tls_free(&t);
        return mrc == MBEDTLS_ERR_SSL_ALLOC_FAILED ? STP_ENOMEM : STP_ETLS;
    }
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    *out = t;
    return 0;
}

void stp_tls_free(struct stp_tls **tp)
{
    struct stp_tls *t = *tp;
    if (!t)
        return;
    *tp = NULL;
    mbedtls_ssl_free(&t->ssl);
    stp_tls_config_unref(&t->cfg);
    stp_buf_free(&t->in);
    stp_buf_free(&t->plain);
    stp_buf_free(&t->out[0]);
    stp_buf_free(&t->out[1]);
    free(t->sni);
    free(t);
}

enum stp_tls_state stp_tls_state(const struct stp_tls *t)
{
    return t->state;
}

int stp_tls_handshake(struct stp_tls *t)
{
    if (t->state == STP_TLS_FAILED)
        return t->err;
    if (t->state != STP_TLS_HANDSHAKE)
        return 0;
    struct stp_tls_rng *prev = bind_rng(t);
    int rc = drive(t);
    unbind_rng(prev);
    return rc;
}

int stp_tls_feed(struct stp_tls *t, const void *data, size_t len)
{
    if (t->state == STP_TLS_FAILED)
        return t->err;
    if (len == 0)
        return 0;
    if (t->cfg->server && t->state == STP_TLS_HANDSHAKE && t->sniffed < 3) {
        int rc = sniff(t, data, len);
        if (rc)
            return rc;
    }
    if (t->in_off > 0) {
        stp_buf_consume(&t->in, t->in_off);
        t->in_off = 0;
    }
    if (stp_buf_append(&t->in, data, len))
        return fail(t, MBEDTLS_ERR_SSL_ALLOC_FAILED);
    return t->state == STP_TLS_HANDSHAKE ? stp_tls_handshake(t) : 0;
}

/* One mbedtls_ssl_read over the fed bytes, retried past empty records. */
static int read_once(struct stp_tls *t, void *buf, size_t cap)
{
    struct stp_tls_rng *prev = bind_rng(t);
    int mrc;
    size_t before;
    do {
        src_open(t);
        before = t->src_len;
        mrc = mbedtls_ssl_read(&t->ssl, buf, cap);
        bool progress = t->src_len < before;
        src_close(t);
        if (mrc != 0 || !progress)
            break;
    } while (1);
    unbind_rng(prev);
    return mrc;
}

ssize_t stp_tls_read(struct stp_tls *t, void *buf, size_t cap)
{
    assert(cap > 0);
    switch (t->state) {
    case STP_TLS_HANDSHAKE:
        return 0;
    case STP_TLS_FAILED:
        return t->err;
    case STP_TLS_PEER_CLOSED:
        return STP_ECLOSED;
    case STP_TLS_OPEN:
    case STP_TLS_CLOSED:
        break;
    }
    int mrc = read_once(t, buf, cap < INT_MAX ? cap : INT_MAX);
    if (mrc > 0)
        return mrc;
    if (mrc == 0 || mrc == MBEDTLS_ERR_SSL_WANT_READ || mrc == MBEDTLS_ERR_SSL_WANT_WRITE)
        return 0;
    if (mrc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
        t->state = STP_TLS_PEER_CLOSED;
        return STP_ECLOSED;
    }
    return fail(t, mrc);
}

/* Queue n bytes: complete and seal full records at once, keep the tail. */
static int queue(struct stp_tls *t, const unsigned char *p, size_t n)
{
    int rc = 0;
    if (can_seal(t)) {
        assert(t->plain.len < t->rec);
        if (t->plain.cap < t->rec && n < t->rec && stp_buf_reserve(&t->plain, t->rec))
            return fail(t, MBEDTLS_ERR_SSL_ALLOC_FAILED);
        if (t->plain.len > 0 && t->plain.len + n >= t->rec) {
            size_t k = t->rec - t->plain.len;
            if (stp_buf_append(&t->plain, p, k))
                return fail(t, MBEDTLS_ERR_SSL_ALLOC_FAILED);
            p += k;
            n -= k;
            rc = seal_queued(t, false);
        }
        for (; !rc && t->plain.len == 0 && n >= t->rec; p += t->rec, n -= t->rec)
            rc = seal(t, p, t->rec);
    }
    if (!rc && stp_buf_append(&t->plain, p, n))
        rc = fail(t, MBEDTLS_ERR_SSL_ALLOC_FAILED);
    return rc;
}

int stp_tls_write(struct stp_tls *t, const struct iovec *iov, int n)
{
    if (t->state == STP_TLS_FAILED)
        return t->err;
    if (t->state == STP_TLS_CLOSED)
        return STP_ECLOSED;
    struct stp_tls_rng *prev = bind_rng(t);
    int rc = 0;
    for (int i = 0; !rc && i < n; i++)
        rc = queue(t, iov[i].iov_base, iov[i].iov_len);
    if (!rc && t->state == STP_TLS_HANDSHAKE)
        rc = drive(t); /* a client's first write starts its handshake */
    unbind_rng(prev);
    return rc;
}

int stp_tls_flush(struct stp_tls *t)
{
    if (!can_seal(t) || t->plain.len == 0)
        return 0;
    struct stp_tls_rng *prev = bind_rng(t);
    int rc = seal_queued(t, true);
    unbind_rng(prev);
    trim(&t->plain);
    return rc;
}

int stp_tls_out_take(struct stp_tls *t, const char **p, size_t *len)
{
    int rc = stp_tls_flush(t);
    *p = NULL;
    *len = 0;
    struct stp_buf *b = &t->out[t->fill];
    if (t->taken || b->len == 0)
        return rc;
    *p = b->data;
    *len = b->len;
    t->taken = true;
    t->fill ^= 1;
    return rc;
}

void stp_tls_out_release(struct stp_tls *t)
{
    assert(t->taken);
    struct stp_buf *b = &t->out[t->fill ^ 1];
    t->taken = false;
    stp_buf_reset(b);
    trim(b);
}

size_t stp_tls_out_pending(const struct stp_tls *t)
{
    return t->out[0].len + t->out[1].len;
}

size_t stp_tls_plain_pending(const struct stp_tls *t)
{
    return t->plain.len;
}

int stp_tls_close(struct stp_tls *t)
{
    if (t->state == STP_TLS_FAILED)
        return t->err;
    if (t->state == STP_TLS_CLOSED)
        return 0;
    int rc = stp_tls_flush(t);
    if (rc)
        return rc;
    struct stp_tls_rng *prev = bind_rng(t);
    int mrc = mbedtls_ssl_close_notify(&t->ssl);
    unbind_rng(prev);
    if (mrc < 0 && mrc != MBEDTLS_ERR_SSL_WANT_WRITE)
        return fail(t, mrc);
    t->state = STP_TLS_CLOSED;
    return 0;
}

/* Append mbedTLS's certificate verification details, on one line. */
static void verify_details(const struct stp_tls *t, char *buf, size_t n)
{
    uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
    size_t used = strlen(buf);
    if (flags == 0 || flags == UINT32_MAX || used + 16 >= n)
        return;
    used += (size_t)snprintf(buf + used, n - used, "; certificate:");
    if (mbedtls_x509_crt_verify_info(buf + used, n - used, " ", flags) < 0)
        buf[used] = '\0';
    for (char *c = buf; *c; c++)
        if (*c == '\n')
            *c = ';';
}

const char *stp_tls_errtext(const struct stp_tls *t, char *buf, size_t n)
{
    char text[160];
    if (n == 0)
        return buf;
    if (t->state != STP_TLS_FAILED) {
        snprintf(buf, n, "no error");
    } else if (t->err == STP_EPROTO) {
        snprintf(buf, n, "not a TLS handshake record (plaintext on a TLS port?)");
    } else {
        mbedtls_strerror(t->mbed_err, text, sizeof(text));
        snprintf(buf, n, "mbedTLS: %s (-0x%04x)", text, (unsigned)-t->mbed_err);
        if (t->mbed_err == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED)
            verify_details(t, buf, n);
    }
    return buf;
}

const char *stp_tls_ciphersuite(const struct stp_tls *t)
{
    const char *s = mbedtls_ssl_get_ciphersuite(&t->ssl);
    return s && t->state != STP_TLS_HANDSHAKE ? s : "";
}

const char *stp_tls_sni(const struct stp_tls *t)
{
    return t->sni;
}

bool stp_tls_peer_verified(const struct stp_tls *t)
{
    return t->cfg->verifies && t->state != STP_TLS_HANDSHAKE && t->state != STP_TLS_FAILED &&
           mbedtls_ssl_get_peer_cert(&t->ssl) != NULL &&
           mbedtls_ssl_get_verify_result(&t->ssl) == 0;
}

int stp_tls_peer_subject(const struct stp_tls *t, char *buf, size_t n)
{
    const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(&t->ssl);
    if (!crt)
        return STP_ENOT_FOUND;
    return mbedtls_x509_dn_gets(buf, n, &crt->subject) < 0 ? STP_EINVAL : 0;
}

int stp_tls_peer_cn(const struct stp_tls *t, char *buf, size_t n)
{
    const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(&t->ssl);
    const mbedtls_x509_name *cn = NULL;
    for (const mbedtls_x509_name *a = crt ? &crt->subject : NULL; a; a = a->next) {
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &a->oid) != 0)
            continue;
        if (cn)
            return STP_EINVAL; /* which one would be the login? */
        cn = a;
    }
    if (!cn)
        return STP_ENOT_FOUND;
    if (cn->val.len == 0 || cn->val.len >= n)
        return STP_EINVAL;
    for (size_t i = 0; i < cn->val.len; i++)
        if (cn->val.p[i] < 0x20 || cn->val.p[i] > 0x7e)
            return STP_EINVAL;
    memcpy(buf, cn->val.p, cn->val.len);
    buf[cn->val.len] = '\0';
    return 0;
}

bool stp_tls_resumed(const struct stp_tls *t)
{
    return t->resumed;
}

int stp_tls__sni_cb(void *unused, mbedtls_ssl_context *ssl, const unsigned char *name, size_t len)
{
    struct stp_tls *t = (struct stp_tls *)ssl;
    /* Any name is accepted; it is only remembered for the log. */
    if (len == 0 || len > 255 || t->sni)
        return 0;
    t->sni = strndup((const char *)name, len);
    return 0;
}

int stp_tls_looks_like_client_hello(const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    if (n == 0 || u[0] != 0x16)
        return 0;
    if ((n > 1 && u[1] != 0x03) || (n > 2 && u[2] > 0x04))
        return 0;
    if (n > 4) {
        unsigned len = (unsigned)u[3] << 8 | u[4];
        if (len < 4 || len > 16384 + 2048)
            return 0;
    }
    return n > 5 ? u[5] == 0x01 : 1;
}
