#include "firesight/error.h"
// Keeps the vtable and typeinfo of Error in one translation unit.
