/*
 * writer.c - the STOMP serializer: frames appended to a caller's stp_buf.
 *
 * Owns nothing; each call appends one piece of a frame (command line, one
 * header, body + NUL) and either appends all of it or returns STP_ENOMEM with
 * the buffer possibly holding a partial piece (callers reset the buffer on
 * error). Callable from any thread on a buffer it owns.
 */
#include "stampede/stomp.h"

#include "stampede/buf.h"
#include "stampede/error.h"

#include <string.h>

int stp_write_command(struct stp_buf *b, enum stp_cmd cmd)
{
    if (cmd <= STP_CMD_HEARTBEAT || cmd >= STP_CMD__COUNT)
        return STP_EINVAL;
    const char *name = stp_cmd_name(cmd);
    size_t n = strlen(name);
    int rc = stp_buf_reserve(b, n + 1);
    if (rc)
        return rc;
    memcpy(b->data + b->len, name, n);
    b->data[b->len + n] = '\n';
    b->len += n + 1;
    return 0;
}

int stp_write_header(struct stp_buf *b, const char *name, struct stp_slice value,
                     enum stp_version v)
{
    return stp_write_header_slices(b, (struct stp_slice){name, strlen(name)}, value, v);
}

int stp_write_header_slices(struct stp_buf *b, struct stp_slice n, struct stp_slice value,
                            enum stp_version v)
{
    /* Room for the common case (nothing to escape) in one go. */
    int rc = stp_buf_reserve(b, n.len + value.len + 2);
    if (rc)
        return rc;
    rc = stp_escape_append(b, n, v);
    if (!rc)
        rc = stp_buf_append(b, ":", 1);
    if (!rc)
        rc = stp_escape_append(b, value, v);
    if (!rc)
        rc = stp_buf_append(b, "\n", 1);
    return rc;
}

int stp_write_header_str(struct stp_buf *b, const char *name, const char *value, enum stp_version v)
{
    return stp_write_header(b, name, (struct stp_slice){value, strlen(value)}, v);
}

int stp_write_header_u64(struct stp_buf *b, const char *name, uint64_t value)
{
    size_t n = strlen(name);
    int rc = stp_buf_reserve(b, n + 22);
    if (rc)
        return rc;
    memcpy(b->data + b->len, name, n);
    b->data[b->len + n] = ':';
    b->len += n + 1;
    rc = stp_buf_append_u64(b, value);
    if (!rc)
        rc = stp_buf_append(b, "\n", 1);
    return rc;
}

int stp_write_body(struct stp_buf *b, struct stp_slice body)
{
    int rc = stp_buf_reserve(b, body.len + 2);
    if (rc)
        return rc;
    char *o = b->data + b->len;
    *o++ = '\n';
    if (body.len)
        memcpy(o, body.p, body.len);
    o[body.len] = '\0';
    b->len += body.len + 2;
    return 0;
}
