/* SPDX-License-Identifier: MIT */
/* The cpio "newc" format of update bundles, shared by the reader
 * (bundle-install.c) and the writer (bundle-write.c). */
#pragma once

#define KOS_CPIO_MAGIC "070701"
#define KOS_CPIO_HEADER_LEN 110 /* magic and 13 fields of 8 hex digits */
#define KOS_CPIO_NAME_MAX 256   /* with the NUL; our names are far shorter */
