"""This hub as a witness of other hubs' logs (docs/transparency.md, "Witnesses")."""
