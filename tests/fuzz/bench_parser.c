/*
 * bench_parser.c - single-core microbenchmark of stp_parse: a buffer of
 * back-to-back SEND frames with 100-byte bodies (4 headers) is parsed over
 * and over; prints frames/s (wall and per CPU-second) and MB/s. Not a test:
 * run it by hand.
 *   bench_stomp_parser [seconds] [cl|nocl]
 */
#include "stampede/buf.h"
#include "stampede/stomp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    int with_cl = !(argc > 2 && strcmp(argv[2], "nocl") == 0);
    char body[100];
    memset(body, 'x', sizeof(body));
    struct stp_buf one = STP_BUF_INIT;
    stp_write_command(&one, STP_CMD_SEND);
    stp_write_header_str(&one, "destination", "/topic/bench", STP_V12);
    stp_write_header_str(&one, "content-type", "text/plain", STP_V12);
    if (with_cl)
        stp_write_header_u64(&one, "content-length", sizeof(body));
    stp_write_header_str(&one, "receipt", "r-1", STP_V12);
    stp_write_body(&one, (struct stp_slice){body, sizeof(body)});
    enum { N = 1000 };
    struct stp_buf all = STP_BUF_INIT;
    for (int i = 0; i < N; i++)
        stp_buf_append(&all, one.data, one.len);

    struct stp_limits lim = {4 << 20, 1000, 64 << 10};
    struct stp_parser p;
    if (stp_parser_init(&p, &lim))
        return 1;
    p.version = STP_V12;
    unsigned long long frames = 0, sum = 0;
    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID), t;
    do {
        for (int rep = 0; rep < 100; rep++) {
            size_t off = 0;
            while (off < all.len) {
                struct stp_frame f;
                ssize_t n = stp_parse(&p, all.data + off, all.len - off, &f);
                if (n <= 0) {
                    fprintf(stderr, "parse failed: %zd\n", n);
                    return 1;
                }
                sum += f.nheaders + f.body.len;
                off += (size_t)n;
                frames++;
            }
        }
        t = clock_s(CLOCK_MONOTONIC);
    } while (t - t0 < secs);
    double el = t - t0, cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    /* Per CPU-second as well: on a shared machine wall time includes waiting. */
    printf("frame %zu bytes (%s): %.2f M frames/s wall, %.2f M frames per CPU-second, "
           "%.0f MB per CPU-second (check %llu)\n",
           one.len, with_cl ? "content-length" : "no content-length", (double)frames / el / 1e6,
           (double)frames / cpu / 1e6, (double)frames * (double)one.len / cpu / 1e6, sum);
    stp_parser_free(&p);
    stp_buf_free(&one);
    stp_buf_free(&all);
    return 0;
}
