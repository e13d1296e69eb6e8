/*
 * broker_harness.h - the broker's real workers, driven in the test's thread
 * without sockets.
 *
 * th_setup makes N workers (stp_worker_init: their loops, mailboxes, net
 * contexts and the STOMP session as the net's layer above) from a command
 * line parsed by the real config parser. Connections are opened with
 * stp_conn_open_detached on a memory stream: client bytes go in through the
 * raw framing's input (the path a socket's bytes take), and every byte the
 * broker writes is appended to the connection's `out`. The harness runs the
 * workers' loops in turn (th_pump) and completes their writes, so commands
 * between workers travel through the real mailboxes and a queue's credit
 * comes back through the real written-marks. The net's ops table is the
 * session's, with teardown wrapped to record that it happened.
 *
 * Single-threaded: every call from the test's thread.
 */
#ifndef STP_TEST_BROKER_HARNESS_H
#define STP_TEST_BROKER_HARNESS_H

#include "broker/broker.h"
#include "broker/worker.h"
#include "net/conn.h"
#include "stampede/buf.h"
#include "stampede/stomp.h"

#include <stdbool.h>
#include <stddef.h>

#define TH_MAX_WORKERS 4
#define TH_MAX_CONNS 64

struct th_conn {
    struct stp_conn *c; /* NULL once the net freed it */
    unsigned worker;
    struct stp_buf out; /* every byte the broker wrote to this connection */
    size_t parsed;      /* of out, what th_frame has returned */
    struct stp_parser parser;
    bool torn_down;   /* the net called ops->teardown */
    bool hold_writes; /* writes stay in flight until released */
    size_t writes;    /* writes the broker started */
};

/* Start nworkers workers configured by flags (a NULL-terminated list of
 * command-line arguments after the program name; NULL for none). */
void th_setup(unsigned nworkers, const char *const *flags);
/* Close everything, run the loops to their end and free. */
void th_teardown(void);

struct stp_worker *th_worker(unsigned i);
/* A destination "<prefix><n>" owned by worker `owner` (one static buffer per
 * slot 0..7, so a test can hold several). */
const char *th_owned_by(unsigned owner, const char *prefix, unsigned slot);
struct stp_broker *th_broker(void);

/* A connection on worker i that has sent nothing yet. */
struct th_conn *th_open(unsigned worker);
/* A connection on worker i that sent CONNECT (STOMP 1.2) and got CONNECTED. */
struct th_conn *th_connect(unsigned worker);
/* Client bytes: frame text without its NUL (added here). */
void th_send(struct th_conn *t, const char *frame);
void th_sendf(struct th_conn *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A frame whose body contains NUL bytes or is given apart. */
void th_send_body(struct th_conn *t, const char *headers, const void *body, size_t len);

/* Run every worker's loop until nothing moves: mailboxes empty, no write
 * left to complete (except held ones), no new output for a few rounds. */
void th_pump(void);
/* Pump until t has a whole frame waiting (work on libuv's thread pool, such
 * as a password check, finishes in its own time) or timeout_ms passed.
 * True when a frame is waiting. */
bool th_await(struct th_conn *t, unsigned timeout_ms);
/* One turn of worker i's loop, completing no write. */
void th_turn(unsigned i);
/* Hold (or stop holding and complete) t's writes. */
void th_hold_writes(struct th_conn *t, bool hold);

/* The next whole frame the broker sent t (heart-beats skipped): true and
 * *f (valid until the next call for t), or false when none is complete. */
bool th_frame(struct th_conn *t, struct stp_frame *f);
/* The value of header `name` in f as a NUL-terminated copy (static buffer,
 * valid until the next call), or NULL. */
const char *th_header(const struct stp_frame *f, const char *name);
/* The body of f as a NUL-terminated copy (static buffer). */
const char *th_body(const struct stp_frame *f);
/* How many whole frames are waiting for t (consumes nothing). */
size_t th_pending_frames(struct th_conn *t);
/* Expect the next frame to be `cmd`; returns it (asserts). */
struct stp_frame th_expect(struct th_conn *t, enum stp_cmd cmd);
/* Expect no further frame (asserts). */
void th_expect_none(struct th_conn *t);

#endif
