/*
 * session_int.h - helpers shared by the session's source files
 * (session.c: connect, dispatch, errors, heart-beats; session_sub.c:
 * subscriptions, deliveries, acks; session_send.c: SEND, transactions,
 * receipts). Everything runs on the connection's worker.
 */
#ifndef STP_BROKER_SESSION_INT_H
#define STP_BROKER_SESSION_INT_H

#include "auth/auth.h"
#include "broker/cmd.h"
#include "broker/session.h"
#include "stampede/stomp.h"

struct stp_conn;
struct stp_selector;

/* What an ACK or NACK says of a delivery: taken, put back (NACK), or
 * rejected (NACK requeue:false: dead-lettered or dropped). */
enum stp_verdict { STP_VERDICT_ACK = 0, STP_VERDICT_NACK = 1, STP_VERDICT_REJECT = 2 };

/* Post to a destination owner and remember it for the next receipt fence. */
void stp_session_post(struct stp_conn *c, unsigned owner, struct stp_post *cmd);
/* Remember an owner for the next receipt fence without posting. */
void stp_session_touch(struct stp_conn *c, unsigned owner);
/* ACK/NACK inside a transaction: checked now, applied at COMMIT. */
int stp_session_txn_ack(struct stp_conn *c, const struct stp_frame *f, enum stp_verdict v,
                        const struct stp_slice *txname, const struct stp_slice *id,
                        struct stp_sub *sub);
/* Settle a delivery named by an ack id (1.2) or message-id (1.0/1.1). */
/* named: the frame named a subscription (1.1), sub is it or NULL when there
 * is no such subscription; !named: every subscription is asked (1.0). */
int stp_session_apply_ack(struct stp_conn *c, const struct stp_frame *f, enum stp_verdict v,
                          const char *id, size_t id_len, bool named, struct stp_sub *sub);
/* What an ACK or NACK names, found without changing anything: the
 * subscription (queue or topic, client acks) and delivery tag. */
struct stp_ack_ref {
    struct stp_sub *sub;
    uint64_t tag;
};
/* 0 and *ref, or -1 when the id names no delivery awaiting acknowledgement
 * (no ERROR is sent: the caller decides). */
int stp_session_resolve_ack(struct stp_conn *c, const char *id, size_t id_len, bool named,
                            struct stp_sub *sub, struct stp_ack_ref *ref);
/* Settle what ref names, if it is still unsettled. */
void stp_session_settle_ref(struct stp_conn *c, const struct stp_ack_ref *ref, enum stp_verdict v);
/* The subscription with this connection-local number, or NULL. */
struct stp_sub *stp_session_sub_by_num(struct stp_conn *c, uint32_t num);
/* A new subscription's local record (in the session's list and maps, not
 * yet known to its owner), taking over sel; NULL when out of memory. The
 * caller checked the id is free and --max-subscriptions. */
struct stp_sub *stp_session_sub_make(struct stp_conn *c, struct stp_slice id, struct stp_slice dest,
                                     enum stp_ack_mode mode, uint32_t prefetch,
                                     struct stp_selector *sel);
/* Tell the owner of sub's destination about it (topic interest or a queue
 * consumer). */
int stp_session_sub_start(struct stp_conn *c, struct stp_sub *sub);
bool stp_session_has_sub_id(struct stp_conn *c, struct stp_slice id);

/* Temp queues (session_temp.c). The private reply queue behind the
 * connection's /temp-queue/NAME (made on first use: an unguessable
 * /reply-queue/ name owned by this connection's worker); *real points into
 * the session's table. 0, or -1 after an ERROR, or STP_ENOMEM. */
int stp_session_temp_resolve(struct stp_conn *c, const struct stp_frame *f, struct stp_slice temp,
                             struct stp_slice *real);
/* reply-to:/temp-queue/NAME on a SEND: resolve it and make sure the
 * connection consumes the reply queue (RabbitMQ's automatic subscription,
 * id "/temp-queue/NAME", ack auto). Same returns. */
int stp_session_temp_reply_to(struct stp_conn *c, const struct stp_frame *f, struct stp_slice temp,
                              struct stp_slice *real);
void stp_session_temps_free(struct stp_conn *c);

/* The counter of this connection's login among the broker's
 * dsubs_per_login (durable_sub.c). */
uint16_t stp_session_login_stripe(struct stp_conn *c);
/* Durable topic subscriptions (durable_sub.c). Does SUBSCRIBE f to topic
 * ask for one? 1 and *qname (heap) its queue's name, 0 when not, -1 after
 * an ERROR, or STP_ENOMEM. */
int stp_session_dsub_target(struct stp_conn *c, const struct stp_frame *f, struct stp_slice topic,
                            char **qname);
/* Does UNSUBSCRIBE f ask to remove the durable subscription? */
bool stp_session_dsub_unsub_asked(const struct stp_frame *f);
/* Remove durable subscription qname (NULL: the one f names by its
 * destination and identity headers). 0, -1 after an ERROR, STP_ENOMEM. */
int stp_session_dsub_remove(struct stp_conn *c, const struct stp_frame *f, const char *qname);
/* The receipt header of f, or NULL. */
const struct stp_slice *stp_session_receipt(const struct stp_frame *f);
/* Queue a RECEIPT behind every earlier fence (and close after it when
 * disconnect is set). */
int stp_session_receipt_fence(struct stp_conn *c, const struct stp_slice *receipt, bool disconnect);
/* The same, releasing the held deliveries of subscription sub_key after the
 * RECEIPT is written. */
int stp_session_receipt_fence_sub(struct stp_conn *c, const struct stp_slice *receipt,
                                  uint64_t sub_key);
/* Send the ERROR frame in *frame (taken over) after the RECEIPTs still
 * waiting for their fences, then close: answers keep the frames' order. */
void stp_session_queue_error(struct stp_conn *c, struct stp_buf *frame);
/* After each frame: a loss reported while it was handled (lost_from) and
 * not covered by a fence it issued gets its ERROR now. */
void stp_session_frame_done(struct stp_conn *c);
/* ERROR for a missing or bad header; returns -1 for the caller to return. */
int stp_session_bad(struct stp_conn *c, const struct stp_frame *f, const char *message,
                    const char *detail);

/* The same with a printf-style detail (at most STP_DETAIL_MAX bytes).
 * Texts follow RabbitMQ's where it has one for the condition (README,
 * "ERROR frames"): a short message header, the details in the body. */
#define STP_DETAIL_MAX 1024
int stp_session_badf(struct stp_conn *c, const struct stp_frame *f, const char *message,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* How much of a client's string an ERROR body quotes ("%.*s"): at most
 * STP_QUOTE_MAX bytes of it. */
#define STP_QUOTE_MAX 256
int stp_quote_len(size_t len);

/* CONNECT (session_connect.c): version, heart-beats, authentication. */
int stp_session_on_connect(struct stp_conn *c, const struct stp_frame *f);
/* Free what CONNECT left (the login, a pending answer). */
void stp_session_connect_free(struct stp_conn *c);
void stp_session_start_heartbeats(struct stp_conn *c);
/* ERROR with an extra header (xname: xvalue, may be NULL); in_order: after
 * the RECEIPTs still waiting for their fences. Then close. */
/* An ERROR frame (message, detail as body, optional receipt-id and extra
 * header) into *out, for the caller to write or queue. */
void stp_session_build_error(struct stp_conn *c, struct stp_buf *out, const char *message,
                             const char *detail, const struct stp_slice *receipt, const char *xname,
                             const char *xvalue);
void stp_session_error_x(struct stp_conn *c, const char *message, const char *detail,
                         const struct stp_slice *receipt, const char *xname, const char *xvalue,
                         bool in_order);
/* --acl-file: may this session do `perm` (STP_ACL_READ/WRITE) on dest? 0, or
 * -1 after an ERROR "access refused to DEST" (session_acl.c). */
int stp_session_check_perm(struct stp_conn *c, const struct stp_frame *f,
                           const struct stp_slice *dest, unsigned perm);
/* SEND's reply-to naming a /queue/ or /topic/ destination needs write on it
 * too (0, or -1 after the ERROR). */
int stp_session_check_reply_to(struct stp_conn *c, const struct stp_frame *f,
                               const struct stp_slice *reply_to);
void stp_session_perms_free(struct stp_conn *c);

int stp_session_on_send(struct stp_conn *c, const struct stp_frame *f);
/* The message a SEND frame f makes when no client connection sent it (a
 * cluster peer's, src/broker/cluster_in.c): the same tail, headers and
 * persistence a local SEND gets, its id drawn from id_src's counter (the
 * calling thread's own index). scratch: the caller thread's buffer. NULL
 * when f has no destination or memory ran out. */
struct stp_msg *stp_msg_from_send(struct stp_buf *scratch, const struct stp_frame *f,
                                  unsigned id_src);
int stp_session_on_subscribe(struct stp_conn *c, const struct stp_frame *f);
int stp_session_on_unsubscribe(struct stp_conn *c, const struct stp_frame *f);
int stp_session_on_ack(struct stp_conn *c, const struct stp_frame *f, bool nack);
int stp_session_on_txn(struct stp_conn *c, const struct stp_frame *f);
void stp_session_free_subs(struct stp_conn *c);
void stp_session_free_txns(struct stp_conn *c);

/* Write one whole frame of n bytes (counted for /metrics). */
int stp_session_write_frame(struct stp_conn *c, enum stp_cmd cmd, const void *p, size_t n);
/* A SEND's or SUBSCRIBE's destination: a known kind (dest.h), within
 * --max-destination-length, no control bytes. Its kind (> 0), or -1 after
 * an ERROR. */
int stp_session_check_dest(struct stp_conn *c, const struct stp_frame *f,
                           const struct stp_slice *dest);
/* Copy a slice into a new NUL-terminated string (NULL on ENOMEM). */
char *stp_session_strdup(struct stp_slice s);

#endif
