/*
 * 14_hostile_frames.c - the hostile-client suite's STOMP inputs (issue 9):
 * malformed and malicious frames before and after CONNECT, bad escapes per
 * version, content-length edge values, oversize and boundary sizes, a NUL,
 * a CR and an LF inserted at every position of a frame, frames split at
 * every byte, a client that dribbles its CONNECT, floods of receipts,
 * subscriptions, destinations and transactions from a client that does not
 * read, and a consumer that hoards a queue and vanishes.
 *
 * Every case asserts the exact answer (14_hostile_common.h) and then that
 * the bystanders, connected before it, got the next marker and nothing else.
 * One broker per group of cases, run with 1 and with 2 workers.
 */
#include "14_hostile_common.h"

#include <errno.h>
#include <stdarg.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

TestSuite(hostile_frames, .init = h_init, .fini = h_fini, .timeout = 90);

/* ===================================================================== */
/* Before CONNECT                                                         */
/* ===================================================================== */

static const struct hk_case pre_connect[] = {
    {"SEND before CONNECT",
     NULL,
     Z("SEND\ndestination:" HK_TOPIC "\n\nforged"),
     {ERR("Illegal command")},
     true},
    {"SUBSCRIBE before CONNECT",
     NULL,
     Z("SUBSCRIBE\nid:1\ndestination:" HK_TOPIC "\n\n"),
     {ERR("Illegal command")},
     false},
    {"DISCONNECT before CONNECT keeps its receipt",
     NULL,
     Z("DISCONNECT\nreceipt:d\n\n"),
     {ERR_R("Illegal command", "d")},
     true},
    {"CONNECTED from a client",
     NULL,
     Z("CONNECTED\nversion:1.2\n\n"),
     {ERR("Illegal command")},
     false},
    {"ERROR from a client", NULL, Z("ERROR\nmessage:x\n\n"), {ERR("Illegal command")}, false},
    {"HTTP request on the STOMP port",
     NULL,
     NZ("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
     {ERR("Bad command")},
     true},
    {"lower-case connect", NULL, Z("connect\naccept-version:1.2\n\n"), {ERR("Bad command")}, true},
    {"a lone NUL", NULL, Z(""), {ERR("Bad command")}, false},
    {"command line too long", NULL, Z("CONNECTCONNECT\n\n"), {ERR("Bad command")}, true},
    {"CR inside the command", NULL, Z("CONN\rECT\n\n"), {ERR("Bad command")}, true},
    {"tab after the command", NULL, Z("CONNECT\t\n\n"), {ERR("Bad command")}, false},
    {"CR CR LF is not an EOL", NULL, NZ("\r\r\n"), {ERR("Bad command")}, true},
    {"empty command line then headers",
     NULL,
     Z("\naccept-version:1.2\n\n"),
     {ERR("Bad command")},
     false},
    {"unknown version",
     NULL,
     Z("CONNECT\naccept-version:2.0\nhost:/\n\n"),
     {ERR("Version mismatch")},
     true},
    {"empty accept-version",
     NULL,
     Z("CONNECT\naccept-version:\n\n"),
     {ERR("Version mismatch")},
     false},
    {"accept-version of near misses",
     NULL,
     Z("CONNECT\naccept-version:1.2.0,1,1.3,v1.2\n\n"),
     {ERR("Version mismatch")},
     false},
    {"accept-version with blanks",
     NULL,
     Z("CONNECT\naccept-version: 1.0 ,\t1.1\t\n\n"),
     {CONN("1.1")},
     true},
    {"heart-beat without comma",
     NULL,
     Z("CONNECT\naccept-version:1.2\nheart-beat:100\n\n"),
     {ERR("invalid heart-beat header")},
     true},
    {"negative heart-beat",
     NULL,
     Z("CONNECT\naccept-version:1.2\nheart-beat:-1,0\n\n"),
     {ERR("invalid heart-beat header")},
     false},
    {"three heart-beat fields",
     NULL,
     Z("CONNECT\naccept-version:1.2\nheart-beat:1,2,3\n\n"),
     {ERR("invalid heart-beat header")},
     false},
    {"heart-beat over 2^64",
     NULL,
     Z("CONNECT\naccept-version:1.2\nheart-beat:18446744073709551616,0\n\n"),
     {ERR("invalid heart-beat header")},
     false},
    {"heart-beat of commas",
     NULL,
     Z("CONNECT\naccept-version:1.2\nheart-beat:,\n\n"),
     {ERR("invalid heart-beat header")},
     false},
    {"heart-beat 2^64-1 both ways is clamped",
     NULL,
     Z("CONNECT\naccept-version:1.2\nheart-beat:18446744073709551615,18446744073709551615\n\n"),
     {CONN("1.2")},
     false},
    {"NUL in a CONNECT header",
     NULL,
     Z("CONNECT\naccept-version:1.2\nlogin:a\0b\n\n"),
     {ERR("malformed header line")},
     true},
    {"CONNECT header without ':'",
     NULL,
     Z("CONNECT\naccept-version:1.2\nbogus\n\n"),
     {ERR("malformed header line")},
     true},
    {"CONNECT header with an empty name",
     NULL,
     Z("CONNECT\n:x\n\n"),
     {ERR("malformed header line")},
     false},
    {"CONNECT headers are not unescaped",
     NULL,
     Z("CONNECT\naccept-version:1.2\nlogin:a\\tb\\\npasscode:\\\n\n"),
     {CONN("1.2")},
     true},
    {"CRLF everywhere",
     NULL,
     Z("CONNECT\r\naccept-version:1.2\r\nhost:/\r\n\r\n"),
     {CONN("1.2")},
     true},
    {"EOLs before CONNECT",
     NULL,
     Z("\n\r\n\n\r\nCONNECT\naccept-version:1.2\n\n"),
     {CONN("1.2")},
     true},
    {"STOMP instead of CONNECT",
     NULL,
     Z("STOMP\naccept-version:1.1\nhost:/\n\n"),
     {CONN("1.1")},
     false},
    {"no accept-version is 1.0", NULL, Z("CONNECT\nhost:/\n\n"), {CONN("1.0")}, false},
    {"CONNECT and a SEND in one write",
     NULL,
     Z("CONNECT\naccept-version:1.2\n\n\0SEND\ndestination:/topic/acc\nreceipt:p\n\nx"),
     {CONN("1.2"), RCPT("p")},
     true},
    {"CONNECT twice in one write",
     NULL,
     Z("CONNECT\naccept-version:1.2\n\n\0CONNECT\naccept-version:1.2\n\n"),
     {CONN("1.2"), ERR("already connected")},
     true},
    {"CONNECT with a body",
     NULL,
     Z("CONNECT\naccept-version:1.2\ncontent-length:3\n\na\0c"),
     {CONN("1.2")},
     true},
    {"CONNECT with a bad content-length",
     NULL,
     Z("CONNECT\ncontent-length:x\n\n"),
     {ERR("invalid content-length")},
     false},
    {"CONNECT announcing 64 KiB",
     NULL,
     Z("CONNECT\ncontent-length:65536\n\n"),
     {ERR("frame too large")},
     false},
    {"TLS ClientHello on the plain port",
     NULL,
     NZ("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
     {CLOSED},
     false},
};

/* ===================================================================== */
/* After CONNECT: the session's answers                                   */
/* ===================================================================== */

static const struct hk_case session[] = {
    /* SEND */
    {"SEND without destination", "1.2", Z("SEND\n\nforged"), {ERR("Missing destination")}, true},
    {"SEND with an empty destination",
     "1.2",
     Z("SEND\ndestination:\n\nforged"),
     {ERR("Unknown destination")},
     false},
    {"SEND to /queue/",
     "1.2",
     Z("SEND\ndestination:/queue/\n\nforged"),
     {ERR("Invalid destination")},
     false},
    {"SEND to /topic/",
     "1.1",
     Z("SEND\ndestination:/topic/\n\nforged"),
     {ERR("Invalid destination")},
     false},
    {"SEND to /QUEUE/h",
     "1.2",
     Z("SEND\ndestination:/QUEUE/h\n\nforged"),
     {ERR("Unknown destination")},
     false},
    {"SEND to queue/h",
     "1.0",
     Z("SEND\ndestination:queue/h\n\nforged"),
     {ERR("Unknown destination")},
     false},
    {"SEND to /exchange/x",
     "1.2",
     Z("SEND\ndestination:/exchange/x\n\nforged"),
     {ERR("Unknown destination")},
     true},
    {"SEND in an unknown transaction",
     "1.2",
     Z("SEND\ndestination:" HK_TOPIC "\ntransaction:nope\n\nforged"),
     {ERR("Bad transaction")},
     true},
    {"ERROR keeps the frame's receipt",
     "1.2",
     Z("SEND\nreceipt:x1\n\nforged"),
     {ERR_R("Missing destination", "x1")},
     true},
    {"the first destination wins",
     "1.2",
     Z("SEND\ndestination:/topic/acc\ndestination:" HK_TOPIC "\nreceipt:d1\n\nx"),
     {RCPT("d1")},
     false},
    /* SUBSCRIBE / UNSUBSCRIBE */
    {"SUBSCRIBE without destination",
     "1.2",
     Z("SUBSCRIBE\nid:1\n\n"),
     {ERR("Missing destination")},
     true},
    {"SUBSCRIBE without id (1.2)",
     "1.2",
     Z("SUBSCRIBE\ndestination:/topic/acc\n\n"),
     {ERR("missing id header")},
     false},
    {"SUBSCRIBE without id (1.1)",
     "1.1",
     Z("SUBSCRIBE\ndestination:/topic/acc\n\n"),
     {ERR("missing id header")},
     false},
    {"SUBSCRIBE without id is fine in 1.0",
     "1.0",
     Z("SUBSCRIBE\ndestination:/topic/acc\nreceipt:s\n\n"),
     {RCPT("s")},
     true},
    {"SUBSCRIBE to /foo",
     "1.2",
     Z("SUBSCRIBE\nid:1\ndestination:/foo\n\n"),
     {ERR("Unknown destination")},
     false},
    {"ack:bogus",
     "1.2",
     Z("SUBSCRIBE\nid:1\ndestination:/topic/acc\nack:bogus\n\n"),
     {ERR("invalid ack mode")},
     true},
    {"ack:CLIENT (case matters)",
     "1.2",
     Z("SUBSCRIBE\nid:1\ndestination:/topic/acc\nack:CLIENT\n\n"),
     {ERR("invalid ack mode")},
     false},
    {"empty ack",
     "1.1",
     Z("SUBSCRIBE\nid:1\ndestination:/topic/acc\nack:\n\n"),
     {ERR("invalid ack mode")},
     false},
    {"negative prefetch-count",
     "1.2",
     Z("SUBSCRIBE\nid:1\ndestination:/queue/acc\nprefetch-count:-1\n\n"),
     {ERR("invalid prefetch-count")},
     false},
    {"prefetch-count 2^32",
     "1.2",
     Z("SUBSCRIBE\nid:1\ndestination:/queue/acc\nprefetch-count:4294967296\n\n"),
     {ERR("invalid prefetch-count")},
     false},
    {"prefetch-count abc",
     "1.2",
     Z("SUBSCRIBE\nid:1\ndestination:/queue/acc\nprefetch-count:abc\n\n"),
     {ERR("invalid prefetch-count")},
     false},
    {"duplicate subscription id",
     "1.2",
     Z("SUBSCRIBE\nid:a\ndestination:/topic/acc\n\n\0"
       "SUBSCRIBE\nid:a\ndestination:/topic/acc2\n\n"),
     {ERR("Duplicated subscription identifier")},
     true},
    {"UNSUBSCRIBE without id",
     "1.2",
     Z("UNSUBSCRIBE\n\n"),
     {ERR("Missing destination or id")},
     true},
    {"UNSUBSCRIBE of an unknown id",
     "1.2",
     Z("UNSUBSCRIBE\nid:nope\n\n"),
     {ERR("No subscription found")},
     false},
    {"1.0 UNSUBSCRIBE of a destination never subscribed",
     "1.0",
     Z("UNSUBSCRIBE\ndestination:/topic/acc\n\n"),
     {ERR("No subscription found")},
     false},
    {"1.0 SUBSCRIBE and UNSUBSCRIBE by destination",
     "1.0",
     Z("SUBSCRIBE\ndestination:/topic/acc\nreceipt:s\n\n\0"
       "UNSUBSCRIBE\ndestination:/topic/acc\nreceipt:u\n\n"),
     {RCPT("s"), RCPT("u")},
     true},
    {"UNSUBSCRIBE twice",
     "1.2",
     Z("SUBSCRIBE\nid:a\ndestination:/topic/acc\n\n\0UNSUBSCRIBE\nid:a\n\n\0"
       "UNSUBSCRIBE\nid:a\n\n"),
     {ERR("No subscription found")},
     false},
    /* Was a bug with 2 or more workers: the ERROR of a later frame was
     * written at once, ahead of the RECEIPTs of earlier frames still waiting
     * for their fence at another worker, and the close dropped them. Answers
     * keep the frames' order. */
    {"RECEIPTs of earlier frames come before a later frame's ERROR",
     "1.2",
     Z("SUBSCRIBE\nid:1\ndestination:/topic/acc1\nreceipt:s1\n\n\0"
       "SUBSCRIBE\nid:2\ndestination:/topic/acc2\nreceipt:s2\n\n\0"
       "SUBSCRIBE\nid:3\ndestination:/topic/acc3\nreceipt:s3\n\n\0FOO\n\n"),
     {RCPT("s1"), RCPT("s2"), RCPT("s3"), ERR("Bad command")},
     false},
    /* ACK / NACK */
    {"ACK without id (1.2)", "1.2", Z("ACK\n\n"), {ERR("Missing header")}, true},
    {"NACK without id (1.2)", "1.2", Z("NACK\nmessage-id:1\n\n"), {ERR("Missing header")}, false},
    {"ACK of garbage", "1.2", Z("ACK\nid:garbage\n\n"), {ERR("unknown message")}, true},
    {"ACK id 1-", "1.2", Z("ACK\nid:1-\n\n"), {ERR("unknown message")}, false},
    {"ACK id -1", "1.2", Z("ACK\nid:-1\n\n"), {ERR("unknown message")}, false},
    {"ACK of subscription number 2^32",
     "1.2",
     Z("ACK\nid:4294967296-1\n\n"),
     {ERR("unknown message")},
     false},
    {"ACK of a subscription that does not exist",
     "1.2",
     Z("ACK\nid:1-1\n\n"),
     {ERR("unknown message")},
     false},
    {"ACK in an unknown transaction",
     "1.2",
     Z("ACK\nid:1-1\ntransaction:t\n\n"),
     {ERR("Bad transaction")},
     false},
    {"1.1 ACK without subscription, of no message",
     "1.1",
     Z("ACK\nmessage-id:1\n\n"),
     {ERR("unknown message")},
     true},
    {"1.1 ACK of an unknown message",
     "1.1",
     Z("ACK\nmessage-id:x\nsubscription:s\n\n"),
     {ERR("unknown message")},
     false},
    {"1.0 ACK without message-id", "1.0", Z("ACK\nid:1\n\n"), {ERR("Missing header")}, false},
    {"1.0 ACK of message-id abc",
     "1.0",
     Z("ACK\nmessage-id:abc\n\n"),
     {ERR("unknown message")},
     false},
    /* transactions */
    {"BEGIN without transaction", "1.2", Z("BEGIN\n\n"), {ERR("Missing transaction")}, true},
    {"COMMIT without transaction", "1.1", Z("COMMIT\n\n"), {ERR("Missing transaction")}, false},
    {"ABORT of an unknown transaction",
     "1.2",
     Z("ABORT\ntransaction:t\n\n"),
     {ERR("Bad transaction")},
     false},
    {"COMMIT of an unknown transaction",
     "1.0",
     Z("COMMIT\ntransaction:t\n\n"),
     {ERR("Bad transaction")},
     false},
    {"BEGIN twice",
     "1.2",
     Z("BEGIN\ntransaction:t\nreceipt:b\n\n\0BEGIN\ntransaction:t\n\n"),
     {RCPT("b"), ERR("transaction already exists")},
     true},
    {"COMMIT after ABORT",
     "1.2",
     Z("BEGIN\ntransaction:t\nreceipt:b\n\n\0ABORT\ntransaction:t\nreceipt:a\n\n\0"
       "COMMIT\ntransaction:t\n\n"),
     {RCPT("b"), RCPT("a"), ERR("Bad transaction")},
     false},
    {"an ERROR drops the open transaction's SENDs",
     "1.2",
     Z("BEGIN\ntransaction:t\n\n\0SEND\ndestination:" HK_TOPIC "\ntransaction:t\n\nforged\0"
       "SEND\ndestination:" HK_QUEUE "\ntransaction:t\n\nforged\0FOO\n\n"),
     {ERR("Bad command")},
     false},
    {"ABORT drops the SENDs",
     "1.2",
     Z("BEGIN\ntransaction:t\n\n\0SEND\ndestination:" HK_TOPIC "\ntransaction:t\n\nforged\0"
       "ABORT\ntransaction:t\nreceipt:a\n\n"),
     {RCPT("a")},
     false},
    /* commands a client may not send, and a second CONNECT */
    {"MESSAGE from a client",
     "1.2",
     Z("MESSAGE\ndestination:" HK_TOPIC "\nmessage-id:1\nsubscription:t\n\nforged"),
     {ERR("Bad command")},
     true},
    {"RECEIPT from a client", "1.2", Z("RECEIPT\nreceipt-id:1\n\n"), {ERR("Bad command")}, false},
    {"ERROR from a client", "1.1", Z("ERROR\nmessage:x\n\n"), {ERR("Bad command")}, false},
    {"CONNECTED from a client", "1.0", Z("CONNECTED\n\n"), {ERR("Bad command")}, false},
    {"CONNECT again",
     "1.2",
     Z("CONNECT\naccept-version:1.2\n\n"),
     {ERR("already connected")},
     true},
    {"STOMP again", "1.1", Z("STOMP\naccept-version:1.1\n\n"), {ERR("already connected")}, false},
    {"lower-case send",
     "1.2",
     Z("send\ndestination:" HK_TOPIC "\n\nforged"),
     {ERR("Bad command")},
     false},
    {"HEARTBEAT is not a command", "1.2", Z("HEARTBEAT\n\n"), {ERR("Bad command")}, false},
    /* what follows a DISCONNECT or an ERROR is never read */
    {"SEND after DISCONNECT in the same write",
     "1.2",
     Z("DISCONNECT\nreceipt:d\n\n\0SEND\ndestination:" HK_TOPIC "\n\nforged"),
     {RCPT("d"), CLOSED},
     true},
    {"DISCONNECT without receipt", "1.2", Z("DISCONNECT\n\n"), {CLOSED}, false},
    {"SEND after an ERROR in the same write",
     "1.2",
     Z("SEND\n\n\0SEND\ndestination:" HK_TOPIC "\n\nforged"),
     {ERR("Missing destination")},
     true},
    {"a NUL after a frame",
     "1.2",
     Z("BEGIN\ntransaction:t\nreceipt:b\n\n\0"),
     {RCPT("b"), ERR("Bad command")},
     true},
};

/* ===================================================================== */
/* Escapes per version                                                    */
/* ===================================================================== */

static const struct hk_case escapes[] = {
    {"1.2: \\t in a value",
     "1.2",
     Z("SEND\ndestination:" HK_TOPIC "\nfoo:a\\tb\n\nforged"),
     {ERR("undefined escape sequence in header")},
     true},
    {"1.2: trailing backslash",
     "1.2",
     Z("SEND\ndestination:" HK_TOPIC "\nfoo:ab\\\n\nforged"),
     {ERR("undefined escape sequence in header")},
     true},
    {"1.2: a lone backslash",
     "1.2",
     Z("SEND\ndestination:" HK_TOPIC "\nfoo:\\\n\nforged"),
     {ERR("undefined escape sequence in header")},
     false},
    {"1.2: \\x in a name",
     "1.2",
     Z("SEND\ndestination:" HK_TOPIC "\nf\\xo:1\n\nforged"),
     {ERR("undefined escape sequence in header")},
     false},
    {"1.2: a name ending in a backslash",
     "1.2",
     Z("SEND\ndestination:" HK_TOPIC "\nfoo\\:bar\n\nforged"),
     {ERR("undefined escape sequence in header")},
     false},
    {"1.2: \\q in the destination",
     "1.2",
     Z("SEND\ndestination:" HK_TOPIC "\\q\n\nforged"),
     {ERR("undefined escape sequence in header")},
     true},
    {"1.2: \\0 is not NUL",
     "1.2",
     Z("SEND\ndestination:" HK_TOPIC "\nfoo:\\0\n\nforged"),
     {ERR("undefined escape sequence in header")},
     false},
    {"1.2: \\r is defined",
     "1.2",
     Z("SEND\ndestination:/topic/acc\nfoo:a\\rb\nreceipt:e\n\nx"),
     {RCPT("e")},
     true},
    {"1.2: \\c \\n \\\\ are defined",
     "1.2",
     Z("SEND\ndestination:/topic/acc\nf\\co:\\n\\\\\\c\nreceipt:e\n\nx"),
     {RCPT("e")},
     false},
    {"1.2: an escaped receipt",
     "1.2",
     Z("SEND\ndestination:/topic/acc\nreceipt:a\\cb\\\\\n\nx"),
     {RCPT("a:b\\")},
     true},
    {"1.2: an escaped destination",
     "1.2",
     Z("SEND\ndestination:/topic/a\\cb\\\\c\nreceipt:e\n\nx"),
     {RCPT("e")},
     false},
    {"1.2: bad escape after the receipt",
     "1.2",
     Z("SEND\nreceipt:x\ndestination:" HK_TOPIC "\nfoo:\\t\n\nforged"),
     {ERR_R("undefined escape sequence in header", "x")},
     true},
    {"1.2: bad escape in the receipt itself",
     "1.2",
     Z("SEND\nreceipt:x\\t\ndestination:" HK_TOPIC "\n\nforged"),
     {ERR("undefined escape sequence in header")},
     false},
    {"1.2: escaped content-length",
     "1.2",
     Z("SEND\ndestination:" HK_TOPIC "\ncontent-length:\\c5\n\nforged"),
     {ERR("invalid content-length")},
     false},
    {"1.1: \\r is undefined",
     "1.1",
     Z("SEND\ndestination:" HK_TOPIC "\nfoo:a\\rb\n\nforged"),
     {ERR("undefined escape sequence in header")},
     true},
    {"1.1: \\t in a SUBSCRIBE id",
     "1.1",
     Z("SUBSCRIBE\ndestination:" HK_TOPIC "\nid:a\\t\n\n"),
     {ERR("undefined escape sequence in header")},
     false},
    {"1.1: \\n \\c \\\\ are defined",
     "1.1",
     Z("SEND\ndestination:/topic/acc\nfoo:\\n\\c\\\\\nreceipt:e\n\nx"),
     {RCPT("e")},
     false},
    {"1.1: an escaped receipt",
     "1.1",
     Z("BEGIN\ntransaction:t\nreceipt:\\\\\\c\\n\n\n"),
     {RCPT("\\:\n")},
     false},
    {"1.0: \\t is two plain bytes",
     "1.0",
     Z("SEND\ndestination:/topic/acc\nfoo:a\\tb\nreceipt:e\n\nx"),
     {RCPT("e")},
     true},
    {"1.0: a backslash in the destination",
     "1.0",
     Z("SEND\ndestination:/topic/acc\\x\\\nreceipt:e\n\nx"),
     {RCPT("e")},
     false},
    {"1.0: a receipt with backslashes comes back as is",
     "1.0",
     Z("BEGIN\ntransaction:t\nreceipt:a\\cb\\\n\n"),
     {RCPT("a\\cb\\")},
     false},
    {"1.0: a NUL is still malformed",
     "1.0",
     Z("SEND\ndestination:" HK_TOPIC "\nx:\0y\n\nforged"),
     {ERR("malformed header line")},
     true},
};

/* ===================================================================== */
/* content-length                                                         */
/* ===================================================================== */

#define CL_SEND(cl) "SEND\ndestination:" HK_TOPIC "\ncontent-length:" cl "\n"
#define CL_OK(cl) "SEND\ndestination:/topic/acc\nreceipt:c\ncontent-length:" cl "\n"

static const struct hk_case content_length[] = {
    {"0 with an empty body", "1.2", Z(CL_OK("0") "\n"), {RCPT("c")}, true},
    {"0 with a body",
     "1.2",
     Z(CL_SEND("0") "\nx"),
     {ERR("frame body not terminated by NUL")},
     true},
    {"exact", "1.2", Z(CL_OK("5") "\nhello"), {RCPT("c")}, true},
    {"a NUL inside the counted body", "1.2", Z(CL_OK("5") "\nhe\0lo"), {RCPT("c")}, true},
    {"all NULs", "1.2", Z(CL_OK("3") "\n\0\0\0"), {RCPT("c")}, false},
    {"one short",
     "1.2",
     Z(CL_SEND("4") "\nhello"),
     {ERR("frame body not terminated by NUL")},
     true},
    {"-1", "1.2", Z(CL_SEND("-1") "\nforged"), {ERR("invalid content-length")}, true},
    {"abc", "1.2", Z(CL_SEND("abc") "\nforged"), {ERR("invalid content-length")}, false},
    {"empty", "1.2", Z(CL_SEND("") "\nforged"), {ERR("invalid content-length")}, false},
    {"leading blank", "1.2", Z(CL_SEND(" 5") "\nforged"), {ERR("invalid content-length")}, false},
    {"trailing blank", "1.1", Z(CL_SEND("5 ") "\nforged"), {ERR("invalid content-length")}, false},
    {"plus sign", "1.2", Z(CL_SEND("+5") "\nforged"), {ERR("invalid content-length")}, false},
    {"hex", "1.0", Z(CL_SEND("0x5") "\nforged"), {ERR("invalid content-length")}, false},
    {"trailing junk", "1.2", Z(CL_SEND("5x") "\nforged"), {ERR("invalid content-length")}, false},
    {"2^64-1",
     "1.2",
     Z(CL_SEND("18446744073709551615") "\nforged"),
     {ERR("frame too large")},
     false},
    {"2^64",
     "1.2",
     Z(CL_SEND("18446744073709551616") "\nforged"),
     {ERR("invalid content-length")},
     false},
    {"a hundred digits",
     "1.2",
     Z(CL_SEND("1000000000000000000000000000000000000000000000000000000000000000000000000000000000"
               "0000000000000000000") "\nforged"),
     {ERR("invalid content-length")},
     false},
    {"the frame limit (4 MiB)",
     "1.2",
     Z(CL_SEND("4194304") "\nforged"),
     {ERR("frame too large")},
     false},
    {"one under the limit, plus the headers",
     "1.2",
     Z(CL_SEND("4194303") "\nforged"),
     {ERR("frame too large")},
     false},
    {"the first content-length wins",
     "1.2",
     Z(CL_SEND("1") "content-length:5\n\nhello"),
     {ERR("frame body not terminated by NUL")},
     true},
    {"a second bad one is ignored",
     "1.2",
     Z(CL_OK("5") "content-length:x\n\nhello"),
     {RCPT("c")},
     false},
    {"leading zeros", "1.2", Z(CL_OK("005") "\nhello"), {RCPT("c")}, false},
    {"running into the next frame",
     "1.2",
     Z(CL_SEND("10") "\nhello\0SEND\ndestination:" HK_TOPIC "\n\nforged"),
     {ERR("frame body not terminated by NUL")},
     false},
    {"counting the probe as body",
     "1.2",
     NZ(CL_OK("3") "\nab"),
     {ERR_R("frame body not terminated by NUL", "c")},
     false},
};

/* Run a table against one broker (and its bystanders); also split at every
 * byte for the cases that ask for it. */
static void run_table(struct hk_by *by, const struct hk_case *t, size_t n, const char *tag)
{
    for (size_t i = 0; i < n; i++) {
        hk_run_tcp(by, &t[i], false, tag);
        if (t[i].split)
            hk_run_tcp(by, &t[i], true, tag);
    }
}

static void tables(int workers)
{
    struct h_broker *b = h_broker_start_ex(workers, true, NULL, NULL);
    struct hk_by by = hk_by_start(b);
    const char *tag = h_fmt("%d worker%s", workers, workers > 1 ? "s" : "");
    run_table(&by, pre_connect, HK_N(pre_connect), tag);
    run_table(&by, session, HK_N(session), tag);
    run_table(&by, escapes, HK_N(escapes), tag);
    run_table(&by, content_length, HK_N(content_length), tag);
    h_broker_stop_ok(b);
}

Test(hostile_frames, tables_1_worker)
{
    tables(1);
}

Test(hostile_frames, tables_2_workers)
{
    tables(2);
}

/* ===================================================================== */
/* A NUL, a CR and an LF at every position of one frame                   */
/* ===================================================================== */

/* The frame the bytes go into, with its offsets:
 *   0 BEGIN 5\n  6 receipt:r 15\n  16 transaction:tx 30\n  31\n  32 NUL
 * Position p means "before the byte at p"; p = 33 is after the frame. */
static const char pos_base[] = "BEGIN\nreceipt:r\ntransaction:tx\n\n";
#define POS_LEN (sizeof pos_base) /* 33 with the NUL */

/* The exact answer to pos_base with byte x inserted at p (14_hostile_common.h
 * adds the probe). Worked out from the frame's grammar, zone by zone. */
static void pos_answer(char x, size_t p, struct hk_answer *w)
{
    static const struct hk_answer bad_cmd = ERR("Bad command"), no_txn = ERR("Missing transaction"),
                                  no_txn_r = ERR_R("Missing transaction", "r"),
                                  bad_line = ERR("malformed header line"),
                                  bad_line_r = ERR_R("malformed header line", "r"),
                                  bad_line_e = ERR_R("malformed header line", ""), ok = RCPT("r");
    memset(w, 0, HK_MAX_ANSWERS * sizeof *w);
    if (x == '\0') {
        if (p <= 5) /* in the command line, or right before its LF */
            w[0] = bad_cmd;
        else if (p <= 15) /* in the receipt line: not read yet */
            w[0] = bad_line;
        else if (p <= 31) /* in the transaction line or the blank line */
            w[0] = bad_line_r;
        else /* a NUL ends the frame; the next one is no command */
            w[0] = ok, w[1] = bad_cmd;
    } else if (x == '\n') {
        if (p == 0 || p >= 30) /* a heart-beat before; a body byte; a heart-beat after */
            w[0] = ok;
        else if (p <= 4) /* "S\nEND" */
            w[0] = bad_cmd;
        else if (p <= 6) /* a blank line right after the command */
            w[0] = no_txn;
        else if (p <= 13) /* "rece\nipt:r": no ':' */
            w[0] = bad_line;
        else if (p == 14) /* "receipt:\nr": the receipt is "", then no ':' */
            w[0] = bad_line_e;
        else if (p <= 16) /* the headers end after the receipt */
            w[0] = no_txn_r;
        else /* "trans\naction:tx", "transaction:t\nx" */
            w[0] = bad_line_r;
    } else {        /* a CR not followed by LF, except right before an LF */
        if (p <= 4) /* "\rBEGIN", "BE\rGIN" */
            w[0] = bad_cmd;
        else if (p == 5 || p == 15 || (p >= 28 && p <= 32)) /* CRLF, or inside a value / the body */
            w[0] = ok;
        else if (p <= 13) /* "rec\reipt": no receipt header at all, the BEGIN is fine */
            ;
        else if (p == 14) /* "receipt:\rr" */
            w[0] = (struct hk_answer)RCPT("\rr");
        else if (p <= 27) /* "trans\raction": no transaction header */
            w[0] = no_txn_r;
        else /* p == 33: "\r" then the probe's "DISCONNECT" */
            w[0] = ok, w[1] = bad_cmd;
    }
}

static struct hk_case *pos_cases(size_t *n)
{
    static const char xs[] = {'\0', '\r', '\n'};
    static const char *xnames[] = {"NUL", "CR", "LF"};
    struct hk_case *t = calloc(3 * (POS_LEN + 1), sizeof *t);
    cr_assert(t != NULL);
    size_t k = 0;
    for (size_t xi = 0; xi < 3; xi++) {
        for (size_t p = 0; p <= POS_LEN; p++, k++) {
            char *b = malloc(POS_LEN + 1);
            cr_assert(b != NULL);
            memcpy(b, pos_base, p);
            b[p] = xs[xi];
            memcpy(b + p + 1, pos_base + p, POS_LEN - p);
            t[k].name = h_fmt("%s at byte %zu", xnames[xi], p);
            t[k].bytes = b;
            t[k].len = POS_LEN + 1;
            pos_answer(xs[xi], p, t[k].want);
        }
    }
    *n = k;
    return t;
}

static void positions(int workers)
{
    struct h_broker *b = h_broker_start_ex(workers, true, NULL, NULL);
    struct hk_by by = hk_by_start(b);
    size_t n;
    struct hk_case *t = pos_cases(&n);
    static const char *versions[] = {"1.2", "1.0"};
    for (size_t v = 0; v < 2; v++) {
        for (size_t i = 0; i < n; i++) {
            t[i].ver = versions[v];
            hk_run_tcp(&by, &t[i], false, h_fmt("%d worker%s", workers, workers > 1 ? "s" : ""));
        }
    }
    /* And the ones that end with an ERROR, split at every byte. */
    for (size_t i = 0; i < n; i++) {
        t[i].ver = "1.2";
        if (t[i].want[0].kind == HK_ERROR)
            hk_run_tcp(&by, &t[i], true, h_fmt("%d worker%s", workers, workers > 1 ? "s" : ""));
    }
    for (size_t i = 0; i < n; i++)
        free((void *)t[i].bytes);
    free(t);
    h_broker_stop_ok(b);
}

Test(hostile_frames, nul_cr_lf_at_every_position_1_worker)
{
    positions(1);
}

Test(hostile_frames, nul_cr_lf_at_every_position_2_workers)
{
    positions(2);
}

/* ===================================================================== */
/* Sizes at and past the limits                                           */
/* ===================================================================== */

/* A broker with small limits: frames of 4096 bytes, 8 headers, header
 * lines of 256 bytes (before CONNECT the frame limit is min(64 KiB, 4096)). */
#define LIM_FRAME 4096
#define LIM_HDRS 8
#define LIM_LINE 256

struct gen {
    struct hk_case *t;
    size_t n, cap;
};

static struct hk_case *gen_add(struct gen *g, const char *name, const char *ver, char *bytes,
                               size_t len)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 32;
        g->t = realloc(g->t, g->cap * sizeof *g->t);
        cr_assert(g->t != NULL);
    }
    struct hk_case *k = &g->t[g->n++];
    memset(k, 0, sizeof *k);
    k->name = name;
    k->ver = ver;
    k->bytes = bytes;
    k->len = len;
    return k;
}

static void gen_free(struct gen *g)
{
    for (size_t i = 0; i < g->n; i++)
        free((void *)g->t[i].bytes);
    free(g->t);
}

/* head + fill bytes of c + tail, with the frame's NUL when nul is set. */
static char *build(const char *head, size_t fill, char c, const char *tail, bool nul, size_t *len)
{
    size_t hl = strlen(head), tl = strlen(tail);
    *len = hl + fill + tl + (nul ? 1 : 0);
    char *b = malloc(*len + 1);
    cr_assert(b != NULL);
    memcpy(b, head, hl);
    memset(b + hl, c, fill);
    memcpy(b + hl + fill, tail, tl);
    b[hl + fill + tl] = '\0';
    return b;
}

/* A SEND of exactly `total` bytes (NUL included) to /topic/acc, padded in the
 * body; with_cl: with a content-length header. */
static char *send_of_size(size_t total, bool with_cl, size_t *len)
{
    char head[128];
    size_t body = 0, prev;
    do { /* until the content-length's digits and the body agree */
        prev = body;
        if (with_cl)
            snprintf(head, sizeof head,
                     "SEND\ndestination:/topic/acc\nreceipt:big\ncontent-length:%zu\n\n", body);
        else
            snprintf(head, sizeof head, "SEND\ndestination:/topic/acc\nreceipt:big\n\n");
        body = total - strlen(head) - 1;
    } while (with_cl && body != prev);
    return build(head, body, 'b', "", true, len);
}

/* A SEND whose header `x:` line is `line` bytes long (EOL excluded). */
static char *send_with_line(size_t line, const char *eol, size_t *len)
{
    char head[64];
    snprintf(head, sizeof head, "SEND\ndestination:/topic/acc\nreceipt:hl\nx:");
    return build(head, line - 2, 'v', h_fmt("%s\n\nbody", eol), true, len);
}

static char *send_with_headers(int nheaders, size_t *len)
{
    char *s = strdup("SEND\nreceipt:nh\ndestination:/topic/acc\n");
    for (int i = 2; i < nheaders; i++) {
        char *t = NULL;
        cr_assert(asprintf(&t, "%sh%d:%d\n", s, i, i) > 0);
        free(s);
        s = t;
    }
    char *t = NULL;
    cr_assert(asprintf(&t, "%s\nbody", s) > 0);
    free(s);
    *len = strlen(t) + 1;
    return t;
}

static struct hk_case *limit_cases(size_t *n)
{
    struct gen g = {0};
    size_t len;
    char *b;
    struct hk_case *k;

    b = send_of_size(LIM_FRAME, false, &len);
    k = gen_add(&g, "a frame of exactly the limit", "1.2", b, len);
    k->want[0] = (struct hk_answer)RCPT("big");
    b = send_of_size(LIM_FRAME + 1, false, &len);
    k = gen_add(&g, "one byte over the limit", "1.2", b, len);
    k->want[0] = (struct hk_answer)ERR_R("frame too large", "big");
    b = send_of_size(LIM_FRAME, true, &len);
    k = gen_add(&g, "exactly the limit, with content-length", "1.1", b, len);
    k->want[0] = (struct hk_answer)RCPT("big");
    b = send_of_size(LIM_FRAME + 1, true, &len);
    k = gen_add(&g, "one over, with content-length", "1.0", b, len);
    k->want[0] = (struct hk_answer)ERR_R("frame too large", "big");
    b = build("SEND\ndestination:" HK_TOPIC "\nreceipt:nn\n\n", 2 * LIM_FRAME, 'f', "", false,
              &len);
    k = gen_add(&g, "a body that never ends", "1.2", b, len);
    k->want[0] = (struct hk_answer)ERR_R("frame too large", "nn");
    b = build("SEND\ndestination:" HK_TOPIC "\nx:", 2 * LIM_FRAME, 'f', "", false, &len);
    k = gen_add(&g, "a header line that never ends", "1.2", b, len);
    k->want[0] = (struct hk_answer)ERR("header too long");
    b = build("", 2 * LIM_FRAME, 'A', "", false, &len);
    k = gen_add(&g, "a command line that never ends", "1.2", b, len);
    k->want[0] = (struct hk_answer)ERR("Bad command");
    b = send_with_line(LIM_LINE, "", &len);
    k = gen_add(&g, "a header line of exactly the limit", "1.2", b, len);
    k->want[0] = (struct hk_answer)RCPT("hl");
    b = send_with_line(LIM_LINE, "\r", &len);
    k = gen_add(&g, "exactly the limit, then CRLF", "1.2", b, len);
    k->want[0] = (struct hk_answer)RCPT("hl");
    b = send_with_line(LIM_LINE + 1, "", &len);
    k = gen_add(&g, "a header line one over", "1.2", b, len);
    k->want[0] = (struct hk_answer)ERR_R("header too long", "hl");
    b = send_with_line(LIM_LINE + 1, "\r", &len);
    k = gen_add(&g, "one over, then CRLF", "1.1", b, len);
    k->want[0] = (struct hk_answer)ERR_R("header too long", "hl");
    b = send_with_headers(LIM_HDRS, &len);
    k = gen_add(&g, "exactly the most headers", "1.2", b, len);
    k->want[0] = (struct hk_answer)RCPT("nh");
    b = send_with_headers(LIM_HDRS + 1, &len);
    k = gen_add(&g, "one header too many", "1.2", b, len);
    k->want[0] = (struct hk_answer)ERR_R("too many headers", "nh");
    b = build("", 3 * LIM_FRAME, '\n', "BEGIN\ntransaction:t\nreceipt:eol\n\n", true, &len);
    k = gen_add(&g, "three frames' worth of heart-beat EOLs", "1.2", b, len);
    k->want[0] = (struct hk_answer)RCPT("eol");
    b = build("", LIM_FRAME, '\r', "", false, &len);
    for (size_t i = 1; i < len; i += 2)
        b[i] = '\n';
    k = gen_add(&g, "a frame's worth of CRLFs", "1.2", b, len);
    b = build("CONNECT\naccept-version:1.2\n\n", LIM_FRAME, 'c', "", true, &len);
    k = gen_add(&g, "a CONNECT over the limit", NULL, b, len);
    k->want[0] = (struct hk_answer)ERR("frame too large");
    b = build("CONNECT\naccept-version:1.2\nx:", LIM_LINE - 2, 'c', "\n\n", true, &len);
    k = gen_add(&g, "a CONNECT header of exactly the limit", NULL, b, len);
    k->want[0] = (struct hk_answer)CONN("1.2");
    b = build("CONNECT\naccept-version:1.2\nx:", LIM_LINE - 1, 'c', "\n\n", true, &len);
    k = gen_add(&g, "a CONNECT header one over", NULL, b, len);
    k->want[0] = (struct hk_answer)ERR("header too long");
    b = strdup("CONNECT\naccept-version:1.2\na:1\nb:2\nc:3\nd:4\ne:5\nf:6\ng:7\nh:8\n\n");
    k = gen_add(&g, "a CONNECT with one header too many", NULL, b, strlen(b) + 1);
    k->want[0] = (struct hk_answer)ERR("too many headers");
    *n = g.n;
    return g.t;
}

static void limits(int workers)
{
    struct h_broker *b =
        H_START_W(workers, "--max-frame-size", h_fmt("%d", LIM_FRAME), "--max-headers",
                  h_fmt("%d", LIM_HDRS), "--max-header-length", h_fmt("%d", LIM_LINE));
    struct hk_by by = hk_by_start(b);
    size_t n;
    struct hk_case *t = limit_cases(&n);
    const char *tag = h_fmt("%d worker%s, small limits", workers, workers > 1 ? "s" : "");
    for (size_t i = 0; i < n; i++)
        hk_run_tcp(&by, &t[i], false, tag);
    struct gen g = {.t = t, .n = n};
    gen_free(&g);
    h_broker_stop_ok(b);
}

Test(hostile_frames, sizes_at_the_limits_1_worker)
{
    limits(1);
}

Test(hostile_frames, sizes_at_the_limits_2_workers)
{
    limits(2);
}

/* The default limits: 64 KiB before CONNECT, header lines of 64 KiB. */
Test(hostile_frames, default_limit_boundaries)
{
    struct h_broker *b = h_broker_start_ex(2, true, NULL, NULL);
    struct hk_by by = hk_by_start(b);
    struct gen g = {0};
    size_t len;
    char *bytes;
    struct hk_case *k;
    const char *head = "CONNECT\naccept-version:1.2\n\n";
    bytes = build(head, 65536 - strlen(head) - 1, 'c', "", true, &len);
    k = gen_add(&g, "a CONNECT of exactly 64 KiB", NULL, bytes, len);
    k->want[0] = (struct hk_answer)CONN("1.2");
    bytes = build(head, 65536 - strlen(head), 'c', "", true, &len);
    k = gen_add(&g, "a CONNECT of 64 KiB + 1", NULL, bytes, len);
    k->want[0] = (struct hk_answer)ERR("frame too large");
    bytes = send_with_line(65536, "", &len);
    k = gen_add(&g, "a header line of exactly 64 KiB", "1.2", bytes, len);
    k->want[0] = (struct hk_answer)RCPT("hl");
    bytes = send_with_line(65537, "", &len);
    k = gen_add(&g, "a header line of 64 KiB + 1", "1.2", bytes, len);
    k->want[0] = (struct hk_answer)ERR_R("header too long", "hl");
    bytes = build("SEND\ndestination:/topic/acc\nreceipt:many\n", 998 * 4, 'x', "\n", true, &len);
    for (size_t i = 0; i < 998; i++)
        memcpy(bytes + strlen("SEND\ndestination:/topic/acc\nreceipt:many\n") + 4 * i, "a:b\n", 4);
    k = gen_add(&g, "1000 headers (the default most)", "1.2", bytes, len);
    k->want[0] = (struct hk_answer)RCPT("many");
    bytes = build("SEND\ndestination:/topic/acc\nreceipt:many\n", 999 * 4, 'x', "\n", true, &len);
    for (size_t i = 0; i < 999; i++)
        memcpy(bytes + strlen("SEND\ndestination:/topic/acc\nreceipt:many\n") + 4 * i, "a:b\n", 4);
    k = gen_add(&g, "1001 headers", "1.2", bytes, len);
    k->want[0] = (struct hk_answer)ERR_R("too many headers", "many");
    for (size_t i = 0; i < g.n; i++)
        hk_run_tcp(&by, &g.t[i], false, "2 workers, default limits");
    gen_free(&g);
    h_broker_stop_ok(b);
}

/* ===================================================================== */
/* Logins (--user guest:guest)                                            */
/* ===================================================================== */

static const struct hk_case logins[] = {
    {"wrong passcode",
     NULL,
     Z("CONNECT\naccept-version:1.2\nlogin:guest\npasscode:nope\n\n"),
     {ERR("Bad CONNECT")},
     true},
    {"no passcode",
     NULL,
     Z("CONNECT\naccept-version:1.2\nlogin:guest\n\n"),
     {ERR("Bad CONNECT")},
     false},
    {"no login",
     NULL,
     Z("CONNECT\naccept-version:1.2\npasscode:guest\n\n"),
     {ERR("Bad CONNECT")},
     false},
    {"empty login and passcode",
     NULL,
     Z("CONNECT\naccept-version:1.2\nlogin:\npasscode:\n\n"),
     {ERR("Bad CONNECT")},
     false},
    {"a trailing blank",
     NULL,
     Z("CONNECT\naccept-version:1.2\nlogin:guest \npasscode:guest\n\n"),
     {ERR("Bad CONNECT")},
     false},
    {"a CR in the passcode",
     NULL,
     Z("CONNECT\naccept-version:1.1\nlogin:guest\npasscode:gue\rst\n\n"),
     {ERR("Bad CONNECT")},
     false},
    {"escapes are not decoded in CONNECT",
     NULL,
     Z("CONNECT\naccept-version:1.2\nlogin:gu\\cest\npasscode:guest\n\n"),
     {ERR("Bad CONNECT")},
     false},
    {"a NUL cutting the passcode short",
     NULL,
     Z("CONNECT\naccept-version:1.2\nlogin:guest\npasscode:guest\0evil\n\n"),
     {ERR("malformed header line")},
     true},
    {"the first login wins",
     NULL,
     Z("CONNECT\naccept-version:1.2\nlogin:guest\nlogin:evil\npasscode:guest\n\n"),
     {CONN("1.2")},
     false},
    {"the first login wins, the other way",
     NULL,
     Z("CONNECT\naccept-version:1.2\nlogin:evil\nlogin:guest\npasscode:guest\n\n"),
     {ERR("Bad CONNECT")},
     false},
    {"a refused CONNECT keeps its receipt",
     NULL,
     Z("CONNECT\naccept-version:1.2\nlogin:x\npasscode:y\nreceipt:c\n\n"),
     {ERR_R("Bad CONNECT", "c")},
     false},
    {"a STOMP frame with the right login",
     NULL,
     Z("STOMP\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n"),
     {CONN("1.2")},
     true},
};

/* Each case from its own loopback address: every refusal counts toward its
 * address's failed-login backoff (issue 11), which is tested on its own
 * below. */
Test(hostile_frames, logins)
{
    struct h_broker *b = H_START_W(2, "--user", "guest:guest");
    struct hk_by by = hk_by_start(b);
    for (size_t i = 0; i < HK_N(logins); i++) {
        h_set_source(h_fmt("127.0.1.%zu", i + 1));
        hk_run_tcp(&by, &logins[i], false, "2 workers, --user");
        h_set_source(h_fmt("127.0.2.%zu", i + 1));
        if (logins[i].split)
            hk_run_tcp(&by, &logins[i], true, "2 workers, --user");
    }
    h_set_source(NULL);
    h_broker_stop_ok(b);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Guessing from one address: five wrong passcodes are answered at once,
 * then each answer waits longer (250 ms, 500 ms, 1 s, ...), even for the
 * right passcode; a client from another address is answered meanwhile, and
 * the bystanders keep working. */
Test(hostile_frames, guessing_is_slowed_down)
{
    struct h_broker *b = H_START_W(2, "--user", "guest:guest");
    struct hk_by by = hk_by_start(b);
    static const struct hk_case guess = {
        "a wrong guess",
        NULL,
        Z("CONNECT\naccept-version:1.2\nlogin:guest\npasscode:guess\n\n"),
        {ERR("Bad CONNECT")}};
    h_set_source("127.0.3.1");
    for (int i = 0; i < 5; i++)
        hk_run_tcp(&by, &guess, false, h_fmt("guess %d", i));
    const double min_ms[] = {200, 450, 900};
    for (int i = 0; i < 3; i++) {
        double t0 = now_ms();
        hk_run_tcp(&by, &guess, false, h_fmt("delayed guess %d", i));
        cr_assert_geq(now_ms() - t0, min_ms[i], "guess %d answered after %.0f ms", i + 5,
                      now_ms() - t0);
    }
    /* The right passcode from the guessing address waits too (2 s now);
     * another address is answered first. */
    struct h_conn *slow = h_dial(b);
    h_sendz(slow, "CONNECT\naccept-version:1.2\nlogin:guest\npasscode:guest\n\n");
    h_set_source("127.0.3.2");
    struct h_conn *other = h_dial(b);
    struct h_frame *f = h_stomp_connect(other, "1.2", "guest", "guest", NULL, false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0, "another address: %s", h_show(f));
    cr_assert_null(h_read(slow, 0), "the guessing address was answered before the delay");
    f = h_read(slow, 5000);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0, "after the delay: %s", h_show(f));
    h_set_source(NULL);
    h_close(slow);
    h_close(other);
    hk_by_check(&by, "guessing");
    h_broker_stop_ok(b);
}

/* ===================================================================== */
/* Slowloris: clients that never finish CONNECT (--login-timeout 1s)      */
/* ===================================================================== */

/* Nothing, a CONNECT dribbled a byte per 100 ms, a CONNECT cut short,
 * heart-beat EOLs every 100 ms, and 40 more silent ones at once: each gets
 * ERROR "login timeout" and a close at about 1 s, while the bystanders go
 * on. */
Test(hostile_frames, slowloris_stomp)
{
    struct h_broker *b = H_START_W(2, "--login-timeout", "1s");
    struct hk_by by = hk_by_start(b);
    enum { SILENT = 40 };
    struct h_conn *silent[SILENT];
    uint64_t t0 = h_now_ms();
    for (int i = 0; i < SILENT; i++)
        silent[i] = h_dial(b);
    struct h_conn *drib = h_dial(b), *cut = h_dial(b), *eols = h_dial(b);
    h_send(cut, "CONNECT\naccept-version:1.2\nhost", 31);
    static const char connect[] = "CONNECT\naccept-version:1.2\nhost:/\n\n";
    size_t sent = 0;
    bool checked_open = false;
    while (h_now_ms() - t0 < 1800) {
        if (sent < sizeof connect - 1 && !drib->closed)
            (void)h_send_raw(drib, connect + sent++, 1);
        (void)h_send_raw(eols, "\n", 1);
        if (!checked_open && h_now_ms() - t0 >= 500) {
            /* Half-way through the timeout: nobody was answered yet. */
            struct h_frame *f = h_read(silent[0], 0);
            cr_assert(f == NULL && !silent[0]->closed, "answered before the login timeout: %s",
                      f ? h_show(f) : "closed");
            checked_open = true;
        }
        hk_by_check(&by, "a slowloris round");
        h_sleep_ms(100);
    }
    struct h_conn *all[SILENT + 3];
    memcpy(all, silent, sizeof silent);
    all[SILENT] = drib, all[SILENT + 1] = cut, all[SILENT + 2] = eols;
    static const struct hk_case timeout = {"never CONNECTs", NULL, "", 0, {ERR("login timeout")}};
    for (int i = 0; i < SILENT + 3; i++) {
        int v = 0;
        cr_assert(hk_check_answers(all[i], hk_tcp_read, &v, &timeout, h_fmt("slowloris %d", i)));
        struct h_frame *more = NULL;
        cr_assert(h_wait_closed(all[i], 3000, &more), "slowloris %d: not closed (%s)", i,
                  more ? h_show(more) : "still open");
    }
    hk_by_check(&by, "all slowloris clients");
    h_broker_stop_ok(b);
}

/* ===================================================================== */
/* Floods from a client that does not read                                */
/* ===================================================================== */

/* A connection with a small receive buffer, CONNECTed with 1.2. */
static struct h_conn *non_reader(struct h_broker *b)
{
    struct h_conn *c = h_dial_port(b->port, 4096);
    struct h_frame *f = h_stomp_connect(c, "1.2", NULL, NULL, NULL, false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0, "CONNECT got %s", h_show(f));
    return c;
}

/* Append printf-formatted frames (each with its NUL) to a growing buffer. */
struct out {
    char *p;
    size_t len, cap;
};

static void outf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0);
    if (o->len + (size_t)n + 1 > o->cap) {
        o->cap = (o->len + (size_t)n + 1) * 2;
        o->p = realloc(o->p, o->cap);
        cr_assert(o->p != NULL);
    }
    memcpy(o->p + o->len, s, (size_t)n + 1);
    o->len += (size_t)n + 1;
    free(s);
}

/* Send o in pieces, checking the bystanders between them: the broker keeps
 * serving everyone else while one client pours frames in without reading. */
static void pour(struct hk_by *by, struct h_conn *c, struct out *o, const char *what)
{
    size_t piece = 64 * 1024;
    for (size_t off = 0; off < o->len; off += piece) {
        size_t n = o->len - off < piece ? o->len - off : piece;
        int r = h_send_raw(c, o->p + off, n);
        cr_assert(r == 0, "%s: the broker stopped reading at byte %zu: %s", what, off,
                  strerror(-r));
        if ((off / piece) % 4 == 0)
            hk_by_check(by, what);
    }
    free(o->p);
    *o = (struct out){0};
}

Test(hostile_frames, receipt_flood)
{
    struct h_broker *b = h_broker_start_ex(2, true, NULL, NULL);
    struct hk_by by = hk_by_start(b);
    struct h_conn *c = non_reader(b);
    enum { N = 20000 };
    struct out o = {0};
    for (int i = 0; i < N; i++)
        outf(&o, "SEND\ndestination:/topic/acc\nreceipt:%d\n\nx", i);
    pour(&by, c, &o, "a flood of receipts");
    hk_by_check(&by, "a flood of receipts");
    /* Every receipt, in order, and nothing else. */
    for (int i = 0; i < N; i++) {
        struct h_frame *f = h_read(c, H_WAIT);
        cr_assert(f && strcmp(f->cmd, "RECEIPT") == 0, "receipt %d: got %s", i, h_show(f));
        cr_assert_str_eq(h_hdr(f, "receipt-id"), h_fmt("%d", i));
    }
    h_disconnect(c);
    hk_by_check(&by, "a flood of receipts, read");
    h_broker_stop_ok(b);
}

Test(hostile_frames, subscription_flood)
{
    struct h_broker *b = h_broker_start_ex(2, true, NULL, NULL);
    struct hk_by by = hk_by_start(b);
    struct h_conn *c = non_reader(b);
    enum { N = 500 };
    struct out o = {0};
    for (int i = 0; i < N; i++)
        outf(&o, "SUBSCRIBE\nid:%d\ndestination:/topic/fl-%d\nreceipt:s%d\n\n", i, i, i);
    pour(&by, c, &o, "a flood of subscriptions");
    hk_by_check(&by, "a flood of subscriptions");
    for (int i = 0; i < N; i++) {
        struct h_frame *f = h_read(c, H_WAIT);
        cr_assert(f && strcmp(f->cmd, "RECEIPT") == 0, "receipt %d: got %s", i, h_show(f));
        cr_assert_str_eq(h_hdr(f, "receipt-id"), h_fmt("s%d", i));
    }
    /* Each subscription is live: one message to one of them arrives, once. */
    h_publish(by.pub, "/topic/fl-377", "to-377", true);
    struct h_frame *f = h_expect_msg(c, "to-377");
    cr_assert_str_eq(h_hdr(f, "subscription"), "377");
    h_expect_silence(c, 100);
    /* Vanishing with 500 subscriptions leaves nothing behind that hurts. */
    h_reset(c);
    h_publish(by.pub, "/topic/fl-377", "after", true);
    hk_by_check(&by, "a reset with 500 subscriptions");
    h_broker_stop_ok(b);
}

Test(hostile_frames, destination_flood)
{
    struct h_broker *b = h_broker_start_ex(2, true, NULL, NULL);
    struct hk_by by = hk_by_start(b);
    struct h_conn *c = non_reader(b);
    enum { N = 3000 };
    struct out o = {0};
    for (int i = 0; i < N; i++)
        outf(&o, "SEND\ndestination:/queue/fl-%d\n%s\nm%d", i, i == N - 1 ? "receipt:last\n" : "",
             i);
    pour(&by, c, &o, "a flood of destinations");
    h_expect_receipt(c, "last");
    h_reset(c);
    hk_by_check(&by, "a flood of destinations");
    /* Nothing lost: each queue holds its one message. */
    struct h_conn *r = h_client(b, "1.2");
    static const int probe[] = {0, 1234, N - 1};
    for (size_t i = 0; i < HK_N(probe); i++) {
        h_subscribe(r, h_fmt("/queue/fl-%d", probe[i]), h_fmt("q%zu", i), NULL, NULL);
        struct h_frame *f = h_expect_msg(r, h_fmt("m%d", probe[i]));
        cr_assert_str_eq(h_hdr(f, "subscription"), h_fmt("q%zu", i));
    }
    h_expect_silence(r, 100);
    h_disconnect(r);
    h_broker_stop_ok(b);
}

Test(hostile_frames, transaction_flood)
{
    struct h_broker *b = h_broker_start_ex(2, true, NULL, NULL);
    struct hk_by by = hk_by_start(b);
    /* 90 open transactions, each holding SENDs to the bystanders' topic and
     * queue, then the client vanishes: none of them may be delivered. */
    struct h_conn *c = non_reader(b);
    struct out o = {0};
    for (int t = 0; t < 90; t++) {
        outf(&o, "BEGIN\ntransaction:t%d\n\n", t);
        for (int i = 0; i < 5; i++)
            outf(&o, "SEND\ndestination:%s\ntransaction:t%d\n\nforged", i % 2 ? HK_TOPIC : HK_QUEUE,
                 t);
    }
    outf(&o, "BEGIN\ntransaction:last\nreceipt:open\n\n");
    pour(&by, c, &o, "90 open transactions");
    h_expect_receipt(c, "open");
    h_reset(c);
    hk_by_check(&by, "a reset with 90 open transactions");
    /* 5000 BEGIN/ABORT pairs from a non-reader. */
    c = non_reader(b);
    for (int i = 0; i < 5000; i++) {
        outf(&o, "BEGIN\ntransaction:t%d\n\n", i);
        outf(&o, "SEND\ndestination:" HK_TOPIC "\ntransaction:t%d\n\nforged", i);
        outf(&o, "ABORT\ntransaction:t%d\n%s\n", i, i == 4999 ? "receipt:done\n" : "");
    }
    pour(&by, c, &o, "5000 aborted transactions");
    h_expect_receipt(c, "done");
    h_disconnect(c);
    hk_by_check(&by, "5000 aborted transactions");
    h_broker_stop_ok(b);
}

/* A client-ack consumer takes a queue's messages, never reads, never acks,
 * and vanishes: every message goes to the next consumer, once. */
Test(hostile_frames, queue_hoarder_loses_nothing)
{
    struct h_broker *b = h_broker_start_ex(2, true, NULL, NULL);
    struct hk_by by = hk_by_start(b);
    struct h_conn *c = non_reader(b);
    h_subscribe(c, "/queue/hoard", "h", "client-individual", NULL);
    enum { N = 300 };
    for (int i = 0; i < N; i++)
        h_publish(by.pub, "/queue/hoard", h_fmt("h%d", i), i == N - 1);
    hk_by_check(&by, "a queue hoarder");
    h_reset(c);
    struct h_conn *r = h_client(b, "1.2");
    h_subscribe(r, "/queue/hoard", "r", NULL, NULL);
    static bool seen[N];
    for (int i = 0; i < N; i++) {
        struct h_frame *f = h_expect(r, "MESSAGE", H_WAIT);
        int k = -1;
        cr_assert(sscanf(f->body, "h%d", &k) == 1 && k >= 0 && k < N, "got %s", h_show(f));
        cr_assert(!seen[k], "h%d delivered twice", k);
        seen[k] = true;
    }
    h_expect_silence(r, 200);
    h_disconnect(r);
    hk_by_check(&by, "a queue hoarder's reset");
    h_broker_stop_ok(b);
}

/* ===================================================================== */
/* Heart-beats promised and not kept                                      */
/* ===================================================================== */

/* A client that promises heart-beats every 1 ms (granted: --heartbeat-min,
 * 100 ms) and then says nothing is closed after twice that, without an
 * ERROR; one that keeps sending EOLs stays. */
Test(hostile_frames, heart_beats_promised_and_not_kept)
{
    struct h_broker *b = h_broker_start_ex(2, true, NULL, NULL);
    struct hk_by by = hk_by_start(b);
    struct h_conn *quiet = h_dial(b), *beating = h_dial(b);
    struct h_frame *f = h_stomp_connect(quiet, "1.2", NULL, NULL, "1,0", false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0 &&
                  strcmp(h_hdr(f, "heart-beat") ? h_hdr(f, "heart-beat") : "", "0,100") == 0,
              "CONNECT heart-beat:1,0 got %s", h_show(f));
    f = h_stomp_connect(beating, "1.2", NULL, NULL, "1,0", false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0, "got %s", h_show(f));
    uint64_t t0 = h_now_ms();
    while (h_now_ms() - t0 < 600) {
        (void)h_send_raw(beating, "\n", 1);
        h_sleep_ms(40);
    }
    struct h_frame *more = NULL;
    cr_assert(h_wait_closed(quiet, 1000, &more), "the silent client is still open (%s)",
              more ? h_show(more) : "no frame");
    h_expect_silence(beating, 50);
    h_disconnect(beating);
    hk_by_check(&by, "heart-beats not kept");
    h_broker_stop_ok(b);
}

/* ===================================================================== */
/* Found by this suite, fixed with issue 9                                */
/* ===================================================================== */

/* Was a bug: an auto-ack delivery stays in the owner's in-flight list until
 * the connection reports it written (CMD_QWRITTEN, after uv_write
 * completes). An UNSUBSCRIBE or a DISCONNECT handled before that posts
 * CMD_CONSUMER_DEL at once, the owner puts the "unwritten" messages back at
 * the head of the queue, and the connection writes them anyway: every
 * message is delivered twice, the second time with redelivered:true. */
Test(hostile_frames, auto_ack_deliveries_are_not_delivered_twice)
{
    struct h_broker *b = h_broker_start_ex(1, true, NULL, NULL);
    struct h_conn *p = h_client(b, "1.2");
    for (int i = 0; i < 20; i++)
        h_publish(p, "/queue/twice", h_fmt("m%d", i), i == 19);
    /* SUBSCRIBE, UNSUBSCRIBE and SUBSCRIBE again in one write: the 20
     * MESSAGEs on subscription 1, the RECEIPT, and nothing more. */
    struct h_conn *c = h_client(b, "1.2");
    static const char three[] = "SUBSCRIBE\nid:1\ndestination:/queue/twice\n\n\0"
                                "UNSUBSCRIBE\nid:1\nreceipt:u\n\n\0"
                                "SUBSCRIBE\nid:2\ndestination:/queue/twice\n\n";
    h_send(c, three, sizeof three);
    for (int i = 0; i < 20; i++) {
        struct h_frame *f = h_expect_msg(c, h_fmt("m%d", i));
        cr_assert_str_eq(h_hdr(f, "subscription"), "1");
    }
    h_expect_receipt(c, "u");
    struct h_frame *f = h_read(c, 500);
    cr_assert(f == NULL, "delivered twice: %s", h_show(f));
    h_broker_stop_ok(b);
}

/* Was a bug: a client that half-closes (shutdown(SHUT_WR), as `nc -N` does)
 * right after a frame with a receipt loses the RECEIPT whenever it waits
 * for a fence at another worker: the EOF closes the connection at once.
 * The frame itself took effect. With 1 worker the RECEIPT comes. */
Test(hostile_frames, receipts_survive_a_half_close)
{
    struct h_broker *b = h_broker_start_ex(2, true, NULL, NULL);
    for (int i = 0; i < 20; i++) {
        struct h_conn *c = h_client(b, "1.2");
        h_sendf(c, "SEND\ndestination:/queue/hc-%d\nreceipt:s\n\nx", i);
        shutdown(c->fd, SHUT_WR);
        h_expect_receipt(c, "s");
        struct h_frame *more = NULL;
        cr_assert(h_wait_closed(c, 3000, &more), "not closed (%s)", h_show(more));
    }
    h_broker_stop_ok(b);
}

/* Was a bug: STOMP 1.1 cannot escape a CR, and the broker writes it raw; a
 * value ending in CR (x:ab\r from a 1.2 publisher) then reaches a 1.1
 * subscriber as "x:ab\r\n", which every 1.1 reader takes as the value "ab".
 * Like the LF for 1.0 (issue 9 bug 3), a header 1.1 cannot carry should not
 * be sent to it. */
Test(hostile_frames, no_changed_header_values_for_stomp_11)
{
    struct h_broker *b = h_broker_start_ex(1, true, NULL, NULL);
    struct h_conn *sub = h_client(b, "1.1");
    h_subscribe(sub, "/topic/cr", "s", NULL, NULL);
    struct h_conn *pub = h_client(b, "1.2");
    h_sendz(pub, "SEND\ndestination:/topic/cr\nx:ab\\r\nreceipt:p\n\nbody");
    h_expect_receipt(pub, "p");
    struct h_frame *f = h_expect_msg(sub, "body");
    const char *x = h_hdr(f, "x");
    cr_assert(x == NULL || strcmp(x, "ab\r") == 0, "1.1 got x:%s instead of ab<CR> or nothing", x);
    h_broker_stop_ok(b);
}
