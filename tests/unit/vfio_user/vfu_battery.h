/* Bad-input battery against a vfio-user server socket (shared by the stub-core
 * unit test and the real-sim integration test). */
#ifndef TEST_VFU_BATTERY_H
#define TEST_VFU_BATTERY_H

#include <stdint.h>

/*
 * Runs every malformed-message case on sock_path (a virtio-net function of
 * the sim: config region 4096 bytes, MSI-X vectors nvec) and checks each gets
 * an error reply or a closed connection, that a second client is refused,
 * and that the function serves a fresh client afterwards (DMA maps of the
 * old client gone).  Returns the number of failed checks (printed).
 */
int vfu_bad_input_battery(const char *sock_path, unsigned nvec);

/* Fresh client on sock_path: VERSION, read vendor/device from config space. 0 or -1. */
int vfu_check_fresh_client(const char *sock_path, uint16_t vendor, uint16_t device);

#endif
