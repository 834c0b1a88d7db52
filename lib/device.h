/* Devices' interface inside layer 2 (device.c): what the graph's executor
 * asks of the device registry. */
#ifndef EMBER_LIB_DEVICE_H
#define EMBER_LIB_DEVICE_H

#include "internal.h"

/* Device dev's thread count, 0 for em_num_threads(). */
int em__device_threads(int dev);
/* One line in the placement log (em_log_device_placement), if it is on. */
/* The name of a device by its internal index (a tensor's or a graph node's
 * `device`: GPUs from EM_GPU_BASE), not by em_device_name's list position. */
const char *em__device_label(int dev);

bool em__placement_logged(void);
void em__log_placement(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
