/* placeholder: core/ owner replaces this with the real entry point */
int main(void) { return 0; }
