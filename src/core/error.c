/* error.c - text for the STP_E* codes and translation from libuv's codes. */
#include "stampede/error.h"

#include <uv.h>

const char *stp_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define STP_ERR_TEXT(name, text)                                                                   \
    case STP_E##name:                                                                              \
        return text;
        STP_ERRNO_MAP(STP_ERR_TEXT)
#undef STP_ERR_TEXT
    default:
        return "unknown error";
    }
}

int stp_err_from_uv(int uverr)
{
    switch (uverr) {
    case 0:
        return 0;
    case UV_ENOSPC:
        return STP_ENOSPC;
    case UV_ENOMEM:
    case UV_ENOBUFS:
        return STP_ENOMEM;
    case UV_EINVAL:
        return STP_EINVAL;
    case UV_EAGAIN:
        return STP_EAGAIN;
    case UV_EOF:
    case UV_ECONNRESET:
    case UV_EPIPE:
    case UV_ECANCELED:
        return STP_ECLOSED;
    case UV_ETIMEDOUT:
        return STP_ETIMEOUT;
    default:
        return STP_EIO;
    }
}
