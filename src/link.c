/* link.c: what the protocol of link.h needs on both ends: a name for this machine, so the root
 * knows which workers share its clock. */
#include "link.h"

#include <unistd.h>

uint64_t link_host_id(void) {
  char name[256] = {0};
  gethostname(name, sizeof name - 1);
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
  return h;
}
