mod crash;
mod fixture;
