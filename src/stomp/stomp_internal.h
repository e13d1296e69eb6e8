/*
 * stomp_internal.h - helpers shared by the codec's own files (src/stomp/ only).
 * Pure functions, no state, callable from any thread.
 */
#ifndef STAMPEDE_STOMP_INTERNAL_H
#define STAMPEDE_STOMP_INTERNAL_H

#include "stampede/stomp.h"

/* Unescape p[0..len) in place for version v (STP_V_NONE is treated as 1.2,
 * STP_V10 leaves the bytes alone). Returns the new length, or STP_EBAD_ESCAPE
 * with *bad set to the offset of the offending backslash. */
ssize_t stp_stomp_unescape(char *p, size_t len, enum stp_version v, size_t *bad);

#endif
