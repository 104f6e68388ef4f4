mod crash;
mod crash_views;
mod fixture;
