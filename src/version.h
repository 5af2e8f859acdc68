/* The program version and the on-disk format versions it reads and writes. */
#ifndef FM_VERSION_H
#define FM_VERSION_H

#define FM_VERSION "0.1.0"

#endif
