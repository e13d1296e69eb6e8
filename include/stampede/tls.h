/*
 * tls.h - a transport-independent TLS 1.2 engine over mbedTLS 2.28.
 *
 * The engine never touches a socket. The connection layer feeds it the
 * ciphertext it read, pulls the plaintext it decrypted, hands it plaintext to
 * send and takes the ciphertext to write. mbedTLS runs over in-memory BIO
 * callbacks that return MBEDTLS_ERR_SSL_WANT_READ when the fed bytes run out,
 * so no call ever blocks. mbedTLS codes never leave this module: failures are
 * STP_E* codes and stp_tls_errtext() gives mbedTLS's text for the log.
 *
 * Three objects, three thread contracts:
 *
 * - struct stp_tls_config: one per listener (or per client profile). Built on
 *   one thread, then read-only and shared by every worker. It is refcounted:
 *   each engine holds a reference, so a reload (SIGHUP) can replace the
 *   listener's config while open connections keep the one they started with.
 *   The refcount is the only mutable field; the session-ticket keys inside are
 *   guarded by mbedTLS's own mutex (MBEDTLS_THREADING_C is on in Debian).
 * - struct stp_tls_rng: a CTR-DRBG, one per worker thread, used only by the
 *   engines of that worker. Every engine call that may need randomness binds
 *   the engine's generator to the calling thread for the call's duration, so
 *   the shared config's random callback finds the right one.
 * - struct stp_tls: one per connection, used only by the worker that owns the
 *   connection.
 *
 * Driving an engine (both sides):
 *
 *   on read(buf, n):  rc = stp_tls_feed(t, buf, n);          // drives handshake
 *                     while ((r = stp_tls_read(t, p, cap)) > 0) consume(p, r);
 *                     // r == 0: need more ciphertext; STP_ECLOSED: close_notify
 *   to send:          stp_tls_write(t, iov, n);  (any number of calls)
 *   on flush:         stp_tls_out_take(t, &p, &len); uv_write(p, len);
 *   in write_cb:      stp_tls_out_release(t);  then take again if more is pending
 *
 * After every feed/write/read/close the caller must take and send the pending
 * ciphertext, also when the call failed: a fatal alert may be waiting there.
 * A client starts the handshake with stp_tls_handshake() or its first write
 * (ClientHello goes to the output); a server starts it with the first feed.
 * Plaintext written before the handshake completes is kept, and sealed into
 * the output by the call that completes the handshake (check
 * stp_tls_out_pending() after each feed). Fed ciphertext is buffered until
 * read: a caller that stops reading plaintext should stop reading the socket
 * too.
 *
 * Reload: a rebuilt config has fresh session-ticket keys, so clients resume
 * only sessions issued after the reload. EC tables that mbedTLS caches inside
 * a key's group are computed at load time, so sharing stays read-only.
 *
 * Handshake timeouts and the pre-CONNECT limits belong to the connection layer.
 */
#ifndef STAMPEDE_TLS_H
#define STAMPEDE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct stp_tls_config;
struct stp_tls_rng;
struct stp_tls;

enum stp_tls_verify {
    STP_TLS_VERIFY_NONE = 0, /* no client certificate is asked for */
    STP_TLS_VERIFY_OPTIONAL, /* asked for; handshake succeeds without a valid one */
    STP_TLS_VERIFY_REQUIRED, /* a certificate signed by the CA is mandatory */
};

/*
 * Cipher suites: TLS 1.2, ECDHE key exchange, AEAD only (AES-128/256-GCM,
 * ChaCha20-Poly1305), with RSA or ECDSA certificates. `ciphers` narrows (and
 * orders) that set: names separated by ':' or ',' in OpenSSL form
 * (ECDHE-RSA-AES128-GCM-SHA256), IANA form (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
 * or mbedTLS form (TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256). Any other suite is
 * refused with STP_EINVAL. NULL or "": the default order, AES-GCM first when
 * the CPU has AES-NI, ChaCha20-Poly1305 first otherwise. The server's order
 * wins. ECDHE groups: X25519, P-256, P-384, P-521 (a client offers them in
 * that order).
 */
struct stp_tls_server_opts {
    const char *cert_path;         /* PEM certificate chain, leaf first; required */
    const char *key_path;          /* PEM private key, RSA or ECDSA; required */
    const char *key_password_path; /* file with the key's passphrase, or NULL */
    const char *ca_path;           /* PEM CAs for client certificates, or NULL */
    enum stp_tls_verify verify;    /* needs ca_path unless NONE */
    const char *ciphers;           /* see above; NULL for the default */
};

struct stp_tls_client_opts {
    const char *ca_path;           /* verify the server against these; NULL: no check */
    const char *server_name;       /* SNI; with ca_path also the name checked (else chain only) */
    const char *cert_path;         /* optional client certificate ... */
    const char *key_path;          /* ... and its key (both or neither) */
    const char *key_password_path; /* file with the key's passphrase, or NULL */
    const char *ciphers;           /* as for the server */
};

/*
 * Build a config. 0 and *out (refcount 1), or a negative code and a one-line,
 * NUL-terminated reason in err (err may be NULL): STP_ENOT_FOUND
 * or STP_EIO for unreadable files, STP_ETLS for unusable certificates/keys
 * (parse error, wrong passphrase, key not matching the certificate),
 * STP_EINVAL for bad options. Call on any thread; not while sharing *out.
 */
int stp_tls_server_config_new(struct stp_tls_config **out, const struct stp_tls_server_opts *o,
                              char *err, size_t errlen);
int stp_tls_client_config_new(struct stp_tls_config **out, const struct stp_tls_client_opts *o,
                              char *err, size_t errlen);

/*
 * Rebuild a config from the same files and options as `old` (SIGHUP). On success
 * *out is a fresh config (refcount 1); on failure *out is untouched and err
 * says why, so the caller keeps using `old`.
 */
int stp_tls_config_rebuild(const struct stp_tls_config *old, struct stp_tls_config **out, char *err,
                           size_t errlen);

/*
 * Rebuild *slot's config and, only if that succeeds, put the new one in *slot
 * and drop the slot's reference to the old one (engines that hold the old one
 * keep it until they are freed). The slot is a plain pointer owned by the
 * calling thread: to reload the listeners of N workers, rebuild once on the
 * main thread, then hand each worker one reference (stp_tls_config_ref) through
 * its mailbox and let it replace its own pointer with stp_tls_config_set().
 */
int stp_tls_config_reload(struct stp_tls_config **slot, char *err, size_t errlen);
/* *slot = cfg (taking the caller's reference) and release the previous one. */
void stp_tls_config_set(struct stp_tls_config **slot, struct stp_tls_config *cfg);

/*
 * Take another reference; any thread that already holds one (relaxed: the
 * channel that hands the new reference to another thread orders it).
 */
struct stp_tls_config *stp_tls_config_ref(struct stp_tls_config *c);
/*
 * Drop a reference and set *c to NULL; any thread. The decrement is a
 * release and the last holder's acquire fence precedes the free, so every
 * engine's use of the config happens before it is freed.
 */
void stp_tls_config_unref(struct stp_tls_config **c);
bool stp_tls_config_is_server(const struct stp_tls_config *c);
/*
 * One line for the log about the config's own certificate, e.g. "EC key,
 * certificate CN=broker.example, valid until 2027-01-31" (" (EXPIRED)" is
 * appended past that date). 0, or STP_EINVAL if n is 0.
 */
int stp_tls_config_describe(const struct stp_tls_config *c, char *buf, size_t n);

/* One per worker thread. 0 or STP_ETLS (no entropy) / STP_ENOMEM. */
int stp_tls_rng_new(struct stp_tls_rng **out);
void stp_tls_rng_free(struct stp_tls_rng **r);

/* New engine for one connection. Takes a reference on cfg. */
int stp_tls_new(struct stp_tls **out, struct stp_tls_config *cfg, struct stp_tls_rng *rng);
/* Free the engine (no alert is sent: call stp_tls_close first) and NULL *t. */
void stp_tls_free(struct stp_tls **t);

enum stp_tls_state {
    STP_TLS_HANDSHAKE,   /* handshake in progress */
    STP_TLS_OPEN,        /* handshake done: data flows both ways */
    STP_TLS_PEER_CLOSED, /* peer sent close_notify; we may still write */
    STP_TLS_CLOSED,      /* we sent close_notify (stp_tls_close) */
    STP_TLS_FAILED,      /* fatal error; see stp_tls_errtext(); only send the pending output */
};
enum stp_tls_state stp_tls_state(const struct stp_tls *t);

/*
 * Drive the handshake without new input (a client calls this once to put its
 * ClientHello in the output). 0 (done or waiting for the peer) or an error.
 */
int stp_tls_handshake(struct stp_tls *t);

/*
 * Hand the engine ciphertext read from the socket; the bytes are copied or
 * consumed before return. Drives the handshake. 0 or:
 *   STP_EPROTO  the first bytes a server sees are not a TLS handshake record
 *               (plaintext on a TLS port): close without an alert.
 *   STP_ETLS    handshake or record failure (an alert may be pending output).
 *   STP_ENOMEM
 * A truncated record just waits for more (returns 0).
 */
int stp_tls_feed(struct stp_tls *t, const void *data, size_t len);

/*
 * Decrypt into buf. Returns bytes (> 0), 0 when more ciphertext is needed (or
 * the handshake is not done), STP_ECLOSED once the peer sent close_notify, or
 * STP_ETLS / STP_ENOMEM. Call until it returns <= 0 after each feed.
 */
ssize_t stp_tls_read(struct stp_tls *t, void *buf, size_t cap);

/*
 * Queue plaintext. Bytes of successive calls are coalesced into full records
 * of up to 16 KiB; full records are sealed at once, the rest when the output
 * is taken (stp_tls_out_take) or on stp_tls_flush. 0, STP_ECLOSED after
 * stp_tls_close, STP_ETLS after a failure, STP_ENOMEM.
 */
int stp_tls_write(struct stp_tls *t, const struct iovec *iov, int n);
/* Seal the queued plaintext into a record now (no-op during the handshake). */
int stp_tls_flush(struct stp_tls *t);

/*
 * Take the ciphertext to send (after sealing queued plaintext). 0 and *p, *len
 * (len 0: nothing to send, or a previous region is still out), or an error
 * from sealing. The region stays valid and unchanged until
 * stp_tls_out_release(); ciphertext produced meanwhile accumulates separately.
 * At most one region is out at a time.
 */
int stp_tls_out_take(struct stp_tls *t, const char **p, size_t *len);
/* The region from stp_tls_out_take() was written (or dropped). */
void stp_tls_out_release(struct stp_tls *t);
/* Ciphertext bytes held (taken and not released + waiting), for back-pressure. */
size_t stp_tls_out_pending(const struct stp_tls *t);
/* Plaintext bytes queued by stp_tls_write() and not yet sealed. */
size_t stp_tls_plain_pending(const struct stp_tls *t);

/* Queue a close_notify alert (take and send it, then close the socket). */
int stp_tls_close(struct stp_tls *t);

/*
 * Text of the engine's last failure for the log ("mbedTLS: <text> (-0x7780)",
 * with certificate verification details when relevant). Returns buf.
 */
const char *stp_tls_errtext(const struct stp_tls *t, char *buf, size_t n);

/* After the handshake: negotiated suite name (mbedTLS form), "" before. */
const char *stp_tls_ciphersuite(const struct stp_tls *t);
/* SNI name the client sent (server side), or NULL. */
const char *stp_tls_sni(const struct stp_tls *t);
/* Peer certificate present and verified against the config's CA. */
bool stp_tls_peer_verified(const struct stp_tls *t);
/* Peer certificate subject ("CN=alice,O=x") into buf; STP_ENOT_FOUND if none. */
int stp_tls_peer_subject(const struct stp_tls *t, char *buf, size_t n);
/* The peer certificate's subject common name (the login of --tls-cert-login)
 * into buf as a C string: 0; STP_ENOT_FOUND when there is no certificate or
 * no CN; STP_EINVAL when the subject has more than one CN, or the CN has a
 * byte outside printable ASCII, or does not fit in n - 1 bytes. Does not
 * check verification (stp_tls_peer_verified). */
int stp_tls_peer_cn(const struct stp_tls *t, char *buf, size_t n);
/* Whether this handshake resumed a session from a ticket (server side). */
bool stp_tls_resumed(const struct stp_tls *t);

/*
 * Sniffing the first bytes of a connection (p may hold only a prefix):
 * stp_tls_looks_like_client_hello: 1 if the n >= 1 bytes are consistent with a
 * TLS record carrying a ClientHello (0x16, 0x03, 0x00-0x04, length, 0x01), 0
 * otherwise. Used on a plain port to close a TLS client cleanly.
 */
int stp_tls_looks_like_client_hello(const char *p, size_t n);

#endif
