/* select.h - placeholder, being written (issue 13). */
#ifndef STP_SELECT_SELECT_H
#define STP_SELECT_SELECT_H
#endif
