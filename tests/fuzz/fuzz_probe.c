/* Configure-time check that clang links a libFuzzer target. */
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return (int)(size & 0); }
