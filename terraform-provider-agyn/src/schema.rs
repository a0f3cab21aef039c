//! Shorthands for building Terraform schemas.

use std::collections::HashMap;

use tf_provider::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, Description, NestedBlock, Schema,
};

pub use AttributeConstraint::{Computed, Optional, OptionalComputed, Required};

pub fn string(constraint: AttributeConstraint, description: &str) -> Attribute {
    attribute(AttributeType::String, constraint, description)
}

pub fn number(constraint: AttributeConstraint, description: &str) -> Attribute {
    attribute(AttributeType::Number, constraint, description)
}

/// A set of strings: unordered, each element once.
pub fn string_set(constraint: AttributeConstraint, description: &str) -> Attribute {
    attribute(
        AttributeType::Set(Box::new(AttributeType::String)),
        constraint,
        description,
    )
}

pub fn boolean(constraint: AttributeConstraint, description: &str) -> Attribute {
    attribute(AttributeType::Bool, constraint, description)
}

fn attribute(
    attr_type: AttributeType,
    constraint: AttributeConstraint,
    description: &str,
) -> Attribute {
    Attribute {
        attr_type,
        description: Description::markdown(description),
        constraint,
        sensitive: false,
        deprecated: false,
    }
}

/// Marks an attribute sensitive: Terraform hides it in plans and output.
pub fn sensitive(attribute: Attribute) -> Attribute {
    Attribute {
        sensitive: true,
        ..attribute
    }
}

/// Marks an attribute deprecated: still accepted, so that older
/// configurations parse, but documented as going away.
pub fn deprecated(attribute: Attribute) -> Attribute {
    Attribute {
        deprecated: true,
        ..attribute
    }
}

pub fn block(description: &str, attributes: Vec<(&str, Attribute)>) -> Block {
    Block {
        version: 1,
        attributes: named(attributes),
        blocks: HashMap::new(),
        description: Description::markdown(description),
        deprecated: false,
    }
}

/// A block that holds one nested block which must appear exactly once.
pub fn with_single_block(mut outer: Block, name: &str, inner: Block) -> Block {
    outer
        .blocks
        .insert(name.to_owned(), NestedBlock::Single(inner));
    outer
}

pub fn schema(block: Block) -> Schema {
    Schema { version: 1, block }
}

fn named(attributes: Vec<(&str, Attribute)>) -> HashMap<String, Attribute> {
    attributes
        .into_iter()
        .map(|(name, attribute)| (name.to_owned(), attribute))
        .collect()
}
