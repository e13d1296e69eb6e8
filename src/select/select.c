/* select.c - placeholder, being written (issue 13). */
#include "select.h"
