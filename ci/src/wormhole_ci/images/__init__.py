"""Container images: what to build, the engines that build them, and the registries they go to."""
