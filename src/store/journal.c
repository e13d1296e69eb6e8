/* journal.c - placeholder, being written (issue 12). */
#include "journal.h"
