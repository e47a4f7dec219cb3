"""Client-side code for Concordat hubs that imports nothing of the hub (docs/private-lookup.md)."""
